// libFuzzer target: arbitrary bytes as a token shard file. The reader must either reject the file with a
// cram::error or hand out only ids below the header's vocabulary size.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "cram/data/shards.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::string path = "/tmp/cram_fuzz_shard_" + std::to_string(::getpid()) + ".shard";
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    try {
        cram::data::shard_reader r(path);
        std::vector<std::int32_t> buf(static_cast<std::size_t>(r.seq_len()));
        for (std::int64_t i = 0; i < r.num_sequences(); ++i) {
            r.read(i, 1, buf.data());
            for (auto t : buf)
                if (t < 0 || t >= r.vocab_size()) std::abort();
        }
    } catch (const cram::error&) {
    }
    return 0;
}
