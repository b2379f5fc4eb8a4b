package bench

// rusageThread is Linux's RUSAGE_THREAD, which package syscall lacks.
const rusageThread = 1
