/* libtidemark_inject.so: what `tidemark attach` loads into a running Python process.
 *
 * The injector (cli/injector.h) stops one thread of the target where it holds no lock of libc
 * or of the interpreter (blocked in a system call, or at the entry of PyObject_Malloc /
 * PyEval_SaveThread...), makes it call dlopen on this library and tidemark_inject once, and
 * lets it go. That call only copies the code and starts a detached thread, then returns. The
 * new thread takes the GIL the ordinary way (PyGILState_Ensure, which waits for the
 * interpreter to hand it over between bytecodes) and runs the code, unless the GIL came later
 * than the budget it was given: then it runs nothing (the caller has reported that the
 * interpreter did not hand the GIL over) and ends. No Python header, no link to libpython: its functions are looked
 * up in the process (the interpreter exports them), so one build serves CPython 3.8-3.13.
 *
 * Thread-safety: tidemark_inject may be called from any thread, with or without the GIL. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*ensure_fn)(void);
typedef void (*release_fn)(int);
typedef int (*run_fn)(const char*);
typedef int (*initialized_fn)(void);

struct job {
  struct timespec deadline; /* CLOCK_MONOTONIC: the GIL must come before it. */
  char code[];
};

static int before(const struct timespec* deadline) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec < deadline->tv_sec ||
         (now.tv_sec == deadline->tv_sec && now.tv_nsec < deadline->tv_nsec);
}

static void* run(void* argument) {
  struct job* job = (struct job*)argument;
  ensure_fn ensure = (ensure_fn)dlsym(RTLD_DEFAULT, "PyGILState_Ensure");
  release_fn release = (release_fn)dlsym(RTLD_DEFAULT, "PyGILState_Release");
  run_fn run_string = (run_fn)dlsym(RTLD_DEFAULT, "PyRun_SimpleString");
  initialized_fn initialized = (initialized_fn)dlsym(RTLD_DEFAULT, "Py_IsInitialized");
  if (ensure && release && run_string && initialized && initialized()) {
    int state = ensure();
    if (before(&job->deadline)) run_string(job->code); /* It catches its own exceptions. */
    release(state);
  }
  free(job);
  return NULL;
}

/* 0: the thread that runs `code` has started; otherwise an errno (nothing will run). The code
 * runs only if the thread gets the GIL within `budget_ms` of this call. */
__attribute__((visibility("default"))) int tidemark_inject(const char* code, long budget_ms) {
  size_t length = strlen(code);
  struct job* copy = (struct job*)malloc(sizeof(struct job) + length + 1);
  if (copy == NULL) return 12; /* ENOMEM */
  memcpy(copy->code, code, length + 1);
  clock_gettime(CLOCK_MONOTONIC, &copy->deadline);
  copy->deadline.tv_sec += budget_ms / 1000;
  copy->deadline.tv_nsec += (budget_ms % 1000) * 1000000L;
  if (copy->deadline.tv_nsec >= 1000000000L) {
    copy->deadline.tv_sec += 1;
    copy->deadline.tv_nsec -= 1000000000L;
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* The thread starts with every signal blocked: the host's handlers run on its own threads. */
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  pthread_t thread;
  int rc = pthread_create(&thread, &attr, run, copy);
  pthread_sigmask(SIG_SETMASK, &saved, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0) free(copy);
  return rc;
}
