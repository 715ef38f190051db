// The one way from a host batch to a backend's memory: batch_upload<Backend>. For a backend whose memory is
// host memory (the CPU) it hands the host views through unchanged; for a device backend it packs every array
// of the batch into one staging buffer the backend provides (pinned on CUDA) and sends it with one
// asynchronous copy on the backend's stream, so the host can prepare the next batch while this one computes.
// The returned views stay valid until the next upload through the same object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cram/model/batch.hpp"
#include "cram/ops/backend.hpp"

namespace cram {

template <ops::backend Backend>
class batch_upload {
public:
    using space = typename Backend::memory_space;
    using context = typename Backend::context;
    static constexpr bool zero_copy = std::is_same_v<space, host_memory>;

    explicit batch_upload(context& ctx) : ctx_(ctx) {}
    batch_upload(const batch_upload&) = delete;
    batch_upload& operator=(const batch_upload&) = delete;

    mlm_batch<space> operator()(const host_mlm_batch& b) {
        if constexpr (zero_copy) {
            return b.view();
        } else {
            packer p(*this, b.ids.size() + b.type_ids.size() + b.masked_positions.size() + b.masked_targets.size());
            mlm_batch<space> out{b.batch, b.seq, p.put(b.ids), p.put_or_null(b.type_ids),
                                 static_cast<int>(b.masked_positions.size()), p.put(b.masked_positions),
                                 p.put(b.masked_targets)};
            p.send();
            return out;
        }
    }

    token_batch<space> operator()(const host_token_batch& b) {
        if constexpr (zero_copy) {
            return b.view();
        } else {
            packer p(*this, b.ids.size() + b.type_ids.size() + b.lengths.size());
            token_batch<space> out = p.tokens(b);
            p.send();
            return out;
        }
    }

    labeled_batch<space> operator()(const host_labeled_batch& b) {
        if constexpr (zero_copy) {
            return b.view();
        } else {
            const auto& t = b.tokens;
            packer p(*this, t.ids.size() + t.type_ids.size() + t.lengths.size() + b.labels.size() + b.targets.size());
            labeled_batch<space> out{p.tokens(t), p.put_or_null(b.labels), p.put_or_null(b.targets)};
            p.send();
            return out;
        }
    }

private:
    // Lays arrays of 4-byte elements one after another (16-byte aligned) in the staging buffer and returns
    // where each one will be in device memory once sent.
    struct packer {
        static constexpr std::size_t align = 16;
        batch_upload& up;
        std::byte* host = nullptr;
        std::size_t used = 0;

        packer(batch_upload& u, std::size_t elements) : up(u) {
            const std::size_t bytes = elements * 4 + 8 * align;  // room for each array's alignment padding
            host = up.store_.staging.acquire(up.ctx_, bytes);
            if (up.store_.device.size() < bytes) {
                up.store_.device = {};
                up.store_.device = typename Backend::template buffer<std::byte>(bytes);
            }
        }
        template <class T>
        const T* put(const std::vector<T>& v) {
            static_assert(sizeof(T) == 4, "batch arrays hold 4-byte elements");
            used = (used + align - 1) / align * align;
            std::memcpy(host + used, v.data(), v.size() * sizeof(T));
            const T* dev = reinterpret_cast<const T*>(up.store_.device.data() + used);
            used += v.size() * sizeof(T);
            return dev;
        }
        template <class T>
        const T* put_or_null(const std::vector<T>& v) { return v.empty() ? nullptr : put(v); }
        token_batch<space> tokens(const host_token_batch& b) {
            return {b.batch, b.seq, put(b.ids), put_or_null(b.type_ids), put_or_null(b.lengths)};
        }
        void send() { up.store_.staging.send(up.ctx_, up.store_.device.data(), used); }
    };

    // Host-memory backends have neither a staging buffer nor device copies.
    struct none {};
    template <bool Device, class = void>
    struct storage {
        none staging, device;
    };
    template <class Void>
    struct storage<true, Void> {
        typename Backend::staging_buffer staging;
        typename Backend::template buffer<std::byte> device;
    };

    context& ctx_;
    storage<!zero_copy> store_{};
};

}  // namespace cram
