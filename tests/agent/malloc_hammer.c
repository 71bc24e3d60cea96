/* C threads that call malloc and free without pause, loaded by test_isolation.py through
 * ctypes: with glibc's arena count at one and its thread cache off, some thread holds the
 * arena lock at most instants, which is what a snapshot child must never wait on. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_int running;
static atomic_ulong rounds;

static void* hammer(void* unused) {
  (void)unused;
  while (atomic_load(&running)) {
    void* blocks[16];
    for (int i = 0; i < 16; ++i) {
      blocks[i] = malloc(64 + 4096 * (size_t)i);
      if (blocks[i]) memset(blocks[i], i, 64);
    }
    for (int i = 0; i < 16; ++i) free(blocks[i]);
    atomic_fetch_add(&rounds, 1);
  }
  return NULL;
}

int hammer_start(int threads) {
  atomic_store(&running, 1);
  for (int i = 0; i < threads; ++i) {
    pthread_t t;
    if (pthread_create(&t, NULL, hammer, NULL) != 0) return -1;
    pthread_detach(t);
  }
  return 0;
}

void hammer_stop(void) { atomic_store(&running, 0); }

unsigned long hammer_rounds(void) { return atomic_load(&rounds); }
