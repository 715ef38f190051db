// SIGINT, SIGTERM, SIGHUP and SIGUSR1 (Ctrl-C, `docker stop`, a scheduler's time limit, a closed terminal,
// cloud preemption; SIGUSR1 is what Slurm's --signal sends ahead of a time limit, and the one signal
// Open MPI's mpirun forwards to every rank without killing them a second later) as a request to stop
// cleanly: the first one is recorded and announced, and long-running
// work polls stop_requested() at safe points (the trainer after each micro-step) to write a checkpoint and
// its summary before exiting with 128 + the signal number. A second signal ends the process at once, as
// if no handler were installed.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <array>
#include <csignal>

namespace cram {

namespace detail {
inline volatile std::sig_atomic_t stop_signal_number = 0;

inline void on_stop_signal(int sig) {
    if (stop_signal_number != 0) {  // the second one: stop now, the way the default action would
        ::signal(sig, SIG_DFL);
        ::raise(sig);
        return;
    }
    stop_signal_number = sig;
    // only async-signal-safe calls here: write(2) of a constant message
    const char* msg = sig == SIGINT    ? "\ncram: SIGINT received: finishing the current step and saving; press Ctrl-C again to quit at once\n"
                      : sig == SIGTERM ? "\ncram: SIGTERM received: finishing the current step and saving; a second signal quits at once\n"
                      : sig == SIGUSR1 ? "\ncram: SIGUSR1 received: finishing the current step and saving; a second signal quits at once\n"
                                       : "\ncram: SIGHUP received: finishing the current step and saving; a second signal quits at once\n";
    std::size_t n = 0;
    while (msg[n]) ++n;
    const ::ssize_t w = ::write(STDERR_FILENO, msg, n);
    (void)w;
}
}  // namespace detail

// Installs the handlers for its lifetime (restoring the previous ones after) and clears an earlier request.
class stop_on_signals {
public:
    static constexpr std::array<int, 4> signals{SIGINT, SIGTERM, SIGHUP, SIGUSR1};

    stop_on_signals() {
        detail::stop_signal_number = 0;
        struct sigaction sa {};
        sa.sa_handler = detail::on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;  // reads and writes in progress continue; the loop polls the flag
        for (std::size_t i = 0; i < signals.size(); ++i) ::sigaction(signals[i], &sa, &previous_[i]);
    }
    ~stop_on_signals() {
        for (std::size_t i = 0; i < signals.size(); ++i) ::sigaction(signals[i], &previous_[i], nullptr);
    }
    stop_on_signals(const stop_on_signals&) = delete;
    stop_on_signals& operator=(const stop_on_signals&) = delete;

private:
    std::array<struct sigaction, signals.size()> previous_{};
};

// The signal that asked to stop (SIGINT, SIGTERM, SIGHUP, SIGUSR1), or 0.
inline int stop_requested() { return detail::stop_signal_number; }

// Asks to stop as a signal would (tests; an embedding program's own shutdown path).
inline void request_stop(int sig) { detail::stop_signal_number = sig; }

// The exit status a shell reports for a process ended by `sig`; cram exits with it after a clean stop.
inline int exit_code_for_signal(int sig) { return 128 + sig; }

// "SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", or "a signal".
inline const char* signal_name(int sig) {
    switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
    }
}

}  // namespace cram
