// libFuzzer target: arbitrary bytes as a corpus file, read as JSON lines, as text blocks and, compressed
// or not, as .zst. Any outcome but a crash or a non-cram exception is fine.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "cram/data/readers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::string base = "/tmp/cram_fuzz_reader_" + std::to_string(::getpid());
    for (const char* ext : {".jsonl", ".jsonl.zst"}) {
        const std::string path = base + ext;
        {
            std::ofstream out(path, std::ios::binary | std::ios::trunc);
            out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
        }
        for (auto fmt : {cram::data::corpus_format::auto_detect, cram::data::corpus_format::text_blocks}) {
            try {
                cram::data::reader_options opt;
                opt.format = fmt;
                opt.max_line_bytes = 1 << 16;
                cram::data::document_reader r({path}, opt);
                std::string doc;
                while (r.next(doc))
                    if (doc.empty()) std::abort();
            } catch (const cram::error&) {
            }
        }
    }
    return 0;
}
