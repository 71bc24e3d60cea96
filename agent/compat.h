/* compat: every difference between CPython 3.8 and 3.13 that the agent depends on.
 *
 * The walker is written once against these functions; compat.c implements them per version
 * (it is compiled as C with Py_BUILD_CORE, since CPython's internal headers do not compile as
 * C++ on 3.11-3.12 with g++ 12). Nothing here allocates a Python object, runs Python code,
 * materializes a __dict__ or a frame, or fills a str's UTF-8 cache.
 *
 * Thread-safety: every function REQUIRES the GIL, and the main interpreter.
 */
#ifndef TIDEMARK_AGENT_COMPAT_H_
#define TIDEMARK_AGENT_COMPAT_H_

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*tm_object_fn)(PyObject* object, void* arg);

/* Calls fn for every object on the collector's lists: every generation and the permanent
 * one (gc.freeze()). REQUIRES: no collection running (tm_gc_collecting() == 0); fn must not
 * create or destroy GC objects. */
void tm_for_each_gc_object(tm_object_fn fn, void* arg);
int tm_gc_collecting(void);

/* Turns automatic collection off and returns whether it was on; tm_gc_resume(previous) puts
 * it back. Between the two, allocating a GC object never starts a collection, so no
 * finalizer, weakref callback or gc.callbacks entry runs and nothing is freed behind a walk
 * (on 3.8-3.11 a GC allocation collects at once; 3.12+ only schedules it). */
int tm_gc_pause(void);
void tm_gc_resume(int previous);

/* Bytes sys.getsizeof adds to __sizeof__: the GC header, and on 3.11+ the managed
 * dict/weakref pre-header. */
size_t tm_preheader_size(PyObject* object);

/* Bytes of an instance's attribute values kept outside a materialized __dict__: the values
 * array of 3.11/3.12, the inline values of 3.13 (not in __sizeof__). 0 when none. */
size_t tm_instance_values_size(PyObject* object);

/* The instance's __dict__ if it exists; never creates one. Borrowed, or NULL. */
PyObject* tm_instance_dict(PyObject* object);

/* 1 when the instance's __dict__ keeps its values inside the instance (3.13 inline values):
 * then both the instance and the dict show the same values. */
int tm_dict_uses_instance_values(PyObject* object);

/* Calls fn(name, value, arg) for each attribute an instance keeps in its values array rather
 * than in a __dict__ (3.11+: the names come from the type's shared keys, in the order the
 * instance's traverse visits the values). No call when the instance has a materialized
 * __dict__ (its entries name the attributes then) or on 3.8-3.10. */
typedef void (*tm_attribute_fn)(PyObject* name, PyObject* value, void* arg);
void tm_for_each_inline_attribute(PyObject* object, tm_attribute_fn fn, void* arg);

/* Calls fn(name, value, arg) for each __slots__ attribute of the instance that holds a value:
 * the object members of every heap type in its MRO. */
typedef void (*tm_slot_fn)(const char* name, PyObject* value, void* arg);
void tm_for_each_slot(PyObject* object, tm_slot_fn fn, void* arg);
/* 1 when tm_for_each_slot has members to read for instances of `type`. */
int tm_type_has_slots(PyTypeObject* type);

/* Calls fn for every object the threads' running frames hold (code, function, globals,
 * builtins, locals dict, frame object, fast locals). On 3.11+ frames are not objects, and
 * asking for them (PyThreadState_GetFrame) would create them: this reads them in place. */
void tm_for_each_frame_object(tm_object_fn fn, void* arg);

/* One frame of a Python stack as the allocation sampler keeps it: the code object (borrowed)
 * and the byte offset of the instruction being run in it (-1: none started yet). */
typedef struct {
  PyObject* code;
  int lasti;
} tm_frame;

/* The calling thread's Python stack, innermost frame first, at most `max` frames; returns how
 * many. Reads the frame chain in place (frames are not objects on 3.11+): no Python object is
 * made, nothing is allocated, no lock is taken, so it may run inside an allocator hook.
 * 0 when the thread has no thread state or runs no Python code. */
int tm_capture_stack(tm_frame* out, int max);

/* 1 when the calling thread runs the main interpreter (0 without a thread state). Unlike
 * tm_is_main_interpreter, safe inside an allocator hook, whatever the thread. */
int tm_thread_in_main_interpreter(void);

/* The source line of a frame captured by tm_capture_stack. Reads the code's line table; does
 * not allocate. */
int tm_code_line(PyObject* code, int lasti);

/* A code object's co_filename and co_name (borrowed). */
PyObject* tm_code_filename(PyObject* code);
PyObject* tm_code_name(PyObject* code);

/* int.__sizeof__ and str.__sizeof__, computed natively. */
size_t tm_int_sizeof(PyObject* object);
size_t tm_str_sizeof(PyObject* object);
/* dict.__sizeof__, natively (_PyDict_SizeOf: exported by every 3.8-3.13 libpython, not in
 * every version's public headers). */
size_t tm_dict_sizeof(PyObject* dict);

/* A str whose characters can be read in place (PyUnicode_DATA): always on 3.12+; before, a
 * legacy str made by the deprecated Py_UNICODE API may not be "ready". */
int tm_str_readable(PyObject* str);

/* The attribute `name` found on `type` or its bases, without calling anything (no descriptor
 * runs, no error set); borrowed, or NULL. */
PyObject* tm_type_lookup(PyTypeObject* type, PyObject* name);

/* Code objects are not GC, so tp_traverse never shows their constants and names. */
void tm_code_referents(PyObject* code, tm_object_fn fn, void* arg);

/* gc.get_count(), without creating the tuple. */
void tm_gc_counts(long long out[3]);

/* sys.getallocatedblocks(): small blocks pymalloc has handed out (about one per object); -1
 * where it is unknown (PYTHONMALLOC=malloc counts nothing: 0). REQUIRES: the GIL. */
long long tm_allocated_blocks(void);

/* 1 once interpreter shutdown has begun: from then on no thread may take the GIL. */
int tm_is_finalizing(void);

/* 1 when running in the main interpreter; the agent refuses sub-interpreters. */
int tm_is_main_interpreter(void);

/* 1 on the interpreter's main thread. */
int tm_is_main_thread(void);

/* 1 where os.fork() warns about a multi-threaded process (3.12+). It counts the process's
 * threads after the after-fork-in-parent hooks have run, so a thread restarted by such a hook
 * is counted: restart it from tm_call_soon instead. */
int tm_fork_counts_threads(void);

/* Runs fn(arg) on the main thread with the GIL at its next chance (Py_AddPendingCall): right
 * after os.fork() returns when the main thread forked. fn must return 0 and set no error.
 * Returns 0, or -1 when the queue is full. */
int tm_call_soon(int (*fn)(void*), void* arg);

#ifdef __cplusplus
}
#endif

#endif /* TIDEMARK_AGENT_COMPAT_H_ */
