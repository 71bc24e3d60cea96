/* libtidemark_inject.so: what `tidemark attach` loads into a running Python process.
 *
 * The debugger (cli/attach.h) stops the target where no lock of libc or of the interpreter
 * is held by the stopped thread (at the entry of an allocator or of PyEval_SaveThread /
 * RestoreThread, or in a blocking system call), loads this library with dlopen and calls
 * tidemark_inject once. That call only copies the code and starts a detached thread, then
 * returns: the debugger detaches at once. The new thread takes the GIL the ordinary way
 * (PyGILState_Ensure, which waits for the interpreter to hand it over between bytecodes),
 * runs the code, and ends. No Python header, no link to libpython: its functions are looked
 * up in the process (the interpreter exports them), so one build serves CPython 3.8-3.13.
 *
 * Thread-safety: tidemark_inject may be called from any thread, with or without the GIL. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

typedef int (*ensure_fn)(void);
typedef void (*release_fn)(int);
typedef int (*run_fn)(const char*);
typedef int (*initialized_fn)(void);

static void* run(void* code) {
  ensure_fn ensure = (ensure_fn)dlsym(RTLD_DEFAULT, "PyGILState_Ensure");
  release_fn release = (release_fn)dlsym(RTLD_DEFAULT, "PyGILState_Release");
  run_fn run_string = (run_fn)dlsym(RTLD_DEFAULT, "PyRun_SimpleString");
  initialized_fn initialized = (initialized_fn)dlsym(RTLD_DEFAULT, "Py_IsInitialized");
  if (ensure && release && run_string && initialized && initialized()) {
    int state = ensure();
    run_string((const char*)code); /* The code catches its own exceptions. */
    release(state);
  }
  free(code);
  return NULL;
}

/* 0: the thread that runs `code` has started; otherwise an errno (nothing will run). */
__attribute__((visibility("default"))) int tidemark_inject(const char* code) {
  char* copy = strdup(code);
  if (copy == NULL) return 12; /* ENOMEM */
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
