// A bounded, deterministic stand-in for libFuzzer's driver (used when the compiler is not clang): runs the
// target on every seed file, then on `--runs N` mutations of them (bit flips, byte inserts, deletions,
// splices, truncations) drawn from a fixed-seed generator. Built with ASan/UBSan, so it is a real if
// shallow fuzz run inside ctest's time budget.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
    long runs = 1000;
    std::vector<std::string> seeds;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--runs" && i + 1 < argc) {
            runs = std::atol(argv[++i]);
            continue;
        }
        auto add = [&](const std::filesystem::path& p) {
            std::ifstream in(p, std::ios::binary);
            seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        };
        if (std::filesystem::is_directory(a)) {
            for (const auto& e : std::filesystem::directory_iterator(a))
                if (e.is_regular_file()) add(e.path());
        } else {
            add(a);
        }
    }
    if (seeds.empty()) seeds.emplace_back("seed");
    for (const auto& s : seeds) LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
    std::uint64_t x = 0x243F6A8885A308D3ull;
    auto rnd = [&] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
    };
    for (long r = 0; r < runs; ++r) {
        std::string s = seeds[rnd() % seeds.size()];
        const int edits = 1 + static_cast<int>(rnd() % 8);
        for (int e = 0; e < edits; ++e) {
            const auto pos = s.empty() ? 0 : rnd() % (s.size() + 1);
            switch (rnd() % 6) {
                case 0: if (!s.empty()) s[pos % s.size()] ^= static_cast<char>(1u << (rnd() % 8)); break;
                case 1: s.insert(s.begin() + static_cast<std::ptrdiff_t>(pos), static_cast<char>(rnd())); break;
                case 2: if (!s.empty()) s.erase(pos % s.size(), 1 + rnd() % 16); break;
                case 3: { const auto& o = seeds[rnd() % seeds.size()]; if (!o.empty()) { const auto from = rnd() % o.size(); s.insert(pos, o.substr(from, 1 + rnd() % 64)); } } break;
                case 4: s.resize(pos); break;
                default: { static const char* bytes[] = {"\xF0\x9F", "\xE2\x80\x8B", "\xC3", "\x00", "##", "\xED\xA0\x80", "\xEF\xBF\xBD", "\n", "\"", "\\u"};
                           s.insert(pos, bytes[rnd() % 10]); } break;
            }
        }
        LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
    }
    std::printf("fuzz: %zu seeds + %ld mutated inputs, no crash\n", seeds.size(), runs);
    return 0;
}
