/* See compat.h. Version checks are on PY_VERSION_HEX, the only place in the agent they are. */
#define Py_BUILD_CORE 1
#include "agent/compat.h"

#if defined(Py_GIL_DISABLED)
#error "tidemark does not support free-threaded CPython builds"
#endif
#if PY_VERSION_HEX < 0x03080000 || PY_VERSION_HEX >= 0x030e0000
#error "tidemark supports CPython 3.8 to 3.13"
#endif

#if PY_VERSION_HEX >= 0x03090000
#include "internal/pycore_gc.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_pystate.h"
#else
#include "internal/pycore_pystate.h"
#endif
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_dict.h"
#include "internal/pycore_frame.h"
#include "internal/pycore_object.h"
#endif
#if PY_VERSION_HEX >= 0x030C0000
#include "internal/pycore_long.h"
#endif
#if PY_VERSION_HEX < 0x030B0000
#include "frameobject.h"
#endif
#if PY_VERSION_HEX < 0x030C0000
#include "structmember.h" /* PyMemberDef; Python.h has it from 3.12. */
#endif

/* structmember.h's T_OBJECT_EX; 3.12 renamed it Py_T_OBJECT_EX. Its value never changed. */
#define TM_T_OBJECT_EX 16

static struct _gc_runtime_state* gc_state(void) {
#if PY_VERSION_HEX >= 0x03090000
  return &PyThreadState_Get()->interp->gc;
#else
  return &_PyRuntime.gc;
#endif
}

static void walk_gc_list(PyGC_Head* head, tm_object_fn fn, void* arg) {
  /* _gc_next is a plain pointer outside a collection; _gc_prev carries flag bits. */
  for (PyGC_Head* gc = (PyGC_Head*)head->_gc_next; gc != head; gc = (PyGC_Head*)gc->_gc_next) {
    fn((PyObject*)(gc + 1), arg);
  }
}

void tm_for_each_gc_object(tm_object_fn fn, void* arg) {
  struct _gc_runtime_state* state = gc_state();
  for (int i = 0; i < NUM_GENERATIONS; ++i) walk_gc_list(&state->generations[i].head, fn, arg);
  walk_gc_list(&state->permanent_generation.head, fn, arg);
}

int tm_gc_collecting(void) { return gc_state()->collecting; }

int tm_gc_pause(void) {
  struct _gc_runtime_state* state = gc_state();
  const int previous = state->enabled;
  state->enabled = 0;
  return previous;
}

void tm_gc_resume(int previous) { gc_state()->enabled = previous; }

size_t tm_preheader_size(PyObject* o) {
#if PY_VERSION_HEX >= 0x030D0000
  /* 3.13's sys.getsizeof adds no pre-header for static types. */
  if (Py_IS_TYPE(o, &PyType_Type) && !PyType_HasFeature((PyTypeObject*)o, Py_TPFLAGS_HEAPTYPE)) {
    return 0;
  }
#endif
#if PY_VERSION_HEX >= 0x030B0000
  return _PyType_PreHeaderSize(Py_TYPE(o));
#else
  return PyObject_IS_GC(o) ? sizeof(PyGC_Head) : 0;
#endif
}

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
static size_t shared_keys_slots(PyTypeObject* tp) {
  if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE)) return 0;
  PyDictKeysObject* keys = ((PyHeapTypeObject*)tp)->ht_cached_keys;
  if (keys == NULL) return 0;
  return (size_t)(keys->dk_nentries + keys->dk_usable);
}
#endif

size_t tm_instance_values_size(PyObject* o) {
#if PY_VERSION_HEX >= 0x030D0000
  PyTypeObject* tp = Py_TYPE(o);
  if (!(tp->tp_flags & Py_TPFLAGS_INLINE_VALUES)) return 0;
  /* A materialized __dict__ that uses the inline values counts them in its own size. */
  if (tm_dict_uses_instance_values(o)) return 0;
  return _PyInlineValuesSize(tp);
#elif PY_VERSION_HEX >= 0x030C0000
  PyTypeObject* tp = Py_TYPE(o);
  if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT)) return 0;
  PyDictOrValues dorv = *_PyObject_DictOrValuesPointer(o);
  if (!_PyDictOrValues_IsValues(dorv)) return 0;
  size_t slots = shared_keys_slots(tp);
  /* dictobject.c new_values(): an insertion-order prefix, then the slots. */
  return _Py_SIZE_ROUND_UP(slots + 2, sizeof(PyObject*)) + slots * sizeof(PyObject*);
#elif PY_VERSION_HEX >= 0x030B0000
  PyTypeObject* tp = Py_TYPE(o);
  if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT)) return 0;
  if (*_PyObject_ValuesPointer(o) == NULL) return 0;
  size_t slots = shared_keys_slots(tp);
  return _Py_SIZE_ROUND_UP(slots + 2, sizeof(PyObject*)) + slots * sizeof(PyObject*);
#else
  (void)o;
  return 0;
#endif
}

PyObject* tm_instance_dict(PyObject* o) {
  PyTypeObject* tp = Py_TYPE(o);
#if PY_VERSION_HEX >= 0x030D0000
  if (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) return (PyObject*)_PyObject_GetManagedDict(o);
#elif PY_VERSION_HEX >= 0x030C0000
  if (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) {
    PyDictOrValues dorv = *_PyObject_DictOrValuesPointer(o);
    return _PyDictOrValues_IsValues(dorv) ? NULL : dorv.dict;
  }
#elif PY_VERSION_HEX >= 0x030B0000
  if (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) return *_PyObject_ManagedDictPointer(o);
#endif
  if (tp->tp_dictoffset == 0) return NULL;
  if (tp->tp_dictoffset > 0) return *(PyObject**)((char*)o + tp->tp_dictoffset);
#if PY_VERSION_HEX < 0x030B0000
  /* Negative offsets (variable-size objects): this computes the slot, creates nothing. */
  PyObject** slot = _PyObject_GetDictPtr(o);
  return slot ? *slot : NULL;
#else
  return NULL; /* 3.11+ _PyObject_GetDictPtr would materialize; such types are rare. */
#endif
}

int tm_dict_uses_instance_values(PyObject* o) {
#if PY_VERSION_HEX >= 0x030D0000
  if (!(Py_TYPE(o)->tp_flags & Py_TPFLAGS_INLINE_VALUES)) return 0;
  PyDictObject* dict = _PyObject_GetManagedDict(o);
  return dict != NULL && dict->ma_values == _PyObject_InlineValues(o);
#else
  (void)o;
  return 0;
#endif
}

#if PY_VERSION_HEX >= 0x030B0000
static void visit_shared_key_values(PyTypeObject* tp, PyObject** values, Py_ssize_t capacity,
                                    tm_attribute_fn fn, void* arg) {
  if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE)) return;
  PyDictKeysObject* keys = ((PyHeapTypeObject*)tp)->ht_cached_keys;
  if (keys == NULL || !DK_IS_UNICODE(keys)) return;
  PyDictUnicodeEntry* entries = DK_UNICODE_ENTRIES(keys);
  Py_ssize_t n = keys->dk_nentries;
  if (capacity >= 0 && n > capacity) n = capacity;
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (values[i] != NULL && entries[i].me_key != NULL) fn(entries[i].me_key, values[i], arg);
  }
}
#endif

void tm_for_each_inline_attribute(PyObject* o, tm_attribute_fn fn, void* arg) {
  PyTypeObject* tp = Py_TYPE(o);
#if PY_VERSION_HEX >= 0x030D0000
  if (!(tp->tp_flags & Py_TPFLAGS_INLINE_VALUES)) return;
  if (_PyObject_GetManagedDict(o) != NULL) return;
  PyDictValues* values = _PyObject_InlineValues(o);
  if (!values->valid) return;
  visit_shared_key_values(tp, values->values, values->capacity, fn, arg);
#elif PY_VERSION_HEX >= 0x030C0000
  if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT)) return;
  PyDictOrValues dorv = *_PyObject_DictOrValuesPointer(o);
  if (!_PyDictOrValues_IsValues(dorv)) return;
  visit_shared_key_values(tp, _PyDictOrValues_GetValues(dorv)->values, -1, fn, arg);
#elif PY_VERSION_HEX >= 0x030B0000
  if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT)) return;
  PyDictValues* values = *_PyObject_ValuesPointer(o);
  if (values == NULL) return;
  visit_shared_key_values(tp, values->values, -1, fn, arg);
#else
  (void)tp;
  (void)fn;
  (void)arg;
#endif
}

int tm_type_has_slots(PyTypeObject* type) {
  PyObject* mro = type->tp_mro;
  if (mro == NULL || !PyTuple_Check(mro)) return 0;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); ++i) {
    PyTypeObject* t = (PyTypeObject*)PyTuple_GET_ITEM(mro, i);
    if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE) || t->tp_members == NULL) continue;
    for (PyMemberDef* m = t->tp_members; m->name != NULL; ++m) {
      if (m->type == TM_T_OBJECT_EX) return 1;
    }
  }
  return 0;
}

void tm_for_each_slot(PyObject* o, tm_slot_fn fn, void* arg) {
  PyObject* mro = Py_TYPE(o)->tp_mro;
  if (mro == NULL || !PyTuple_Check(mro)) return;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); ++i) {
    PyTypeObject* t = (PyTypeObject*)PyTuple_GET_ITEM(mro, i);
    if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE) || t->tp_members == NULL) continue;
    for (PyMemberDef* m = t->tp_members; m->name != NULL; ++m) {
      if (m->type != TM_T_OBJECT_EX) continue;
#ifdef Py_RELATIVE_OFFSET
      if (m->flags & Py_RELATIVE_OFFSET) continue; /* Made absolute when the type is built. */
#endif
      PyObject* value = *(PyObject**)((char*)o + m->offset);
      if (value != NULL) fn(m->name, value, arg);
    }
  }
}

static void visit_if(PyObject* o, tm_object_fn fn, void* arg) {
  if (o != NULL) fn(o, arg);
}

#if PY_VERSION_HEX >= 0x030B0000
/* A thread's innermost frame: frames are not objects on 3.11+, read in place. */
static _PyInterpreterFrame* top_frame(PyThreadState* t) {
#if PY_VERSION_HEX >= 0x030D0000
  return t->current_frame;
#else
  return t->cframe ? t->cframe->current_frame : NULL;
#endif
}

/* A C-stack shim frame (3.12+) or one just pushed, whose code has not started. */
static int not_running_code(_PyInterpreterFrame* f) {
#if PY_VERSION_HEX >= 0x030C0000
  if (f->owner == FRAME_OWNED_BY_CSTACK) return 1;
#endif
  return _PyFrame_IsIncomplete(f);
}
#endif

void tm_for_each_frame_object(tm_object_fn fn, void* arg) {
  PyInterpreterState* interp = PyThreadState_Get()->interp;
  for (PyThreadState* t = PyInterpreterState_ThreadHead(interp); t; t = PyThreadState_Next(t)) {
#if PY_VERSION_HEX >= 0x030B0000
    for (_PyInterpreterFrame* f = top_frame(t); f != NULL; f = f->previous) {
      if (not_running_code(f)) continue;
#if PY_VERSION_HEX >= 0x030D0000
      PyObject* code = f->f_executable;
      visit_if(f->f_funcobj, fn, arg);
#elif PY_VERSION_HEX >= 0x030C0000
      PyObject* code = (PyObject*)f->f_code;
      visit_if(f->f_funcobj, fn, arg);
#else
      PyObject* code = (PyObject*)f->f_code;
      visit_if((PyObject*)f->f_func, fn, arg);
#endif
      visit_if(code, fn, arg);
      visit_if(f->f_globals, fn, arg);
      visit_if(f->f_builtins, fn, arg);
      visit_if(f->f_locals, fn, arg);
      visit_if((PyObject*)f->frame_obj, fn, arg);
      if (code != NULL && PyCode_Check(code)) {
        /* Locals, cells and free variables are always valid; the value stack above them
         * is only valid while the frame is suspended, so it is left out. */
        int n = ((PyCodeObject*)code)->co_nlocalsplus;
        for (int i = 0; i < n; ++i) visit_if(f->localsplus[i], fn, arg);
      }
    }
#else
    for (PyFrameObject* f = t->frame; f != NULL; f = f->f_back) fn((PyObject*)f, arg);
#endif
  }
}

static PyThreadState* current_thread_state(void) {
#if PY_VERSION_HEX >= 0x030D0000
  return PyThreadState_GetUnchecked();
#else
  return _PyThreadState_UncheckedGet();
#endif
}

int tm_capture_stack(tm_frame* out, int max) {
  PyThreadState* t = current_thread_state();
  int n = 0;
  if (t == NULL) return 0;
#if PY_VERSION_HEX >= 0x030B0000
  for (_PyInterpreterFrame* f = top_frame(t); f != NULL && n < max; f = f->previous) {
    if (not_running_code(f)) continue;
#if PY_VERSION_HEX >= 0x030D0000
    PyObject* code = f->f_executable;
#else
    PyObject* code = (PyObject*)f->f_code;
#endif
    if (code == NULL || !PyCode_Check(code)) continue;
    out[n].code = code;
    out[n].lasti = _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
    ++n;
  }
#else
  for (PyFrameObject* f = t->frame; f != NULL && n < max; f = f->f_back) {
    out[n].code = (PyObject*)f->f_code;
#if PY_VERSION_HEX >= 0x030A0000
    out[n].lasti = f->f_lasti < 0 ? -1 : f->f_lasti * (int)sizeof(_Py_CODEUNIT);
#else
    out[n].lasti = f->f_lasti;
#endif
    ++n;
  }
#endif
  return n;
}

int tm_thread_in_main_interpreter(void) {
  PyThreadState* t = current_thread_state();
  return t != NULL && t->interp == PyInterpreterState_Main();
}

int tm_code_line(PyObject* code, int lasti) {
  PyCodeObject* co = (PyCodeObject*)code;
  if (lasti < 0) return co->co_firstlineno;
  return PyCode_Addr2Line(co, lasti);
}

PyObject* tm_code_filename(PyObject* code) { return ((PyCodeObject*)code)->co_filename; }
PyObject* tm_code_name(PyObject* code) { return ((PyCodeObject*)code)->co_name; }

size_t tm_int_sizeof(PyObject* o) {
#if PY_VERSION_HEX >= 0x030C0000
  Py_ssize_t digits = (Py_ssize_t)_PyLong_DigitCount((PyLongObject*)o);
  if (digits < 1) digits = 1; /* Zero still has its one digit allocated. */
  return (size_t)(offsetof(PyLongObject, long_value.ob_digit) + digits * sizeof(digit));
#else
  Py_ssize_t digits = Py_SIZE(o) < 0 ? -Py_SIZE(o) : Py_SIZE(o);
#if PY_VERSION_HEX >= 0x030B0000
  if (digits < 1) digits = 1; /* 3.11 counts zero's allocated digit too. */
#endif
  return (size_t)(offsetof(PyLongObject, ob_digit) + digits * sizeof(digit));
#endif
}

size_t tm_dict_sizeof(PyObject* dict) { return (size_t)_PyDict_SizeOf((PyDictObject*)dict); }

int tm_str_readable(PyObject* str) {
#if PY_VERSION_HEX < 0x030C0000
  return PyUnicode_IS_READY(str);
#else
  (void)str;
  return 1;
#endif
}

PyObject* tm_type_lookup(PyTypeObject* type, PyObject* name) {
  /* A static type no code has used yet is not ready: _PyType_Lookup would ready it (3.8-3.11:
   * find_name_in_mro), allocating its MRO and dict during the walk. Its base is asked
   * instead: what it does not define itself it inherits. */
  while (type != NULL && type->tp_mro == NULL) type = type->tp_base;
  return type == NULL ? NULL : _PyType_Lookup(type, name);
}

size_t tm_str_sizeof(PyObject* o) {
  size_t size;
#if PY_VERSION_HEX < 0x030C0000
  if (!PyUnicode_IS_READY(o)) {
    size = sizeof(PyUnicodeObject);
  } else
#endif
      if (PyUnicode_IS_COMPACT_ASCII(o)) {
    size = sizeof(PyASCIIObject) + (size_t)PyUnicode_GET_LENGTH(o) + 1;
  } else if (PyUnicode_IS_COMPACT(o)) {
    size =
        sizeof(PyCompactUnicodeObject) + ((size_t)PyUnicode_GET_LENGTH(o) + 1) * PyUnicode_KIND(o);
  } else {
    size = sizeof(PyUnicodeObject);
    if (((PyUnicodeObject*)o)->data.any != NULL) {
      size += ((size_t)PyUnicode_GET_LENGTH(o) + 1) * PyUnicode_KIND(o);
    }
  }
#if PY_VERSION_HEX < 0x030C0000
  {
    const wchar_t* wstr = ((PyASCIIObject*)o)->wstr;
    if (wstr != NULL && (!PyUnicode_IS_READY(o) || (const void*)wstr != PyUnicode_DATA(o))) {
      Py_ssize_t wlen = PyUnicode_IS_COMPACT_ASCII(o) ? ((PyASCIIObject*)o)->length
                                                      : ((PyCompactUnicodeObject*)o)->wstr_length;
      size += ((size_t)wlen + 1) * sizeof(wchar_t);
    }
  }
#endif
  if (!PyUnicode_IS_COMPACT_ASCII(o)) {
    const char* utf8 = ((PyCompactUnicodeObject*)o)->utf8;
    if (utf8 != NULL && (const void*)utf8 != PyUnicode_DATA(o)) {
      size += (size_t)((PyCompactUnicodeObject*)o)->utf8_length + 1;
    }
  }
  return size;
}

void tm_code_referents(PyObject* o, tm_object_fn fn, void* arg) {
  PyCodeObject* c = (PyCodeObject*)o;
  visit_if(c->co_consts, fn, arg);
  visit_if(c->co_names, fn, arg);
  visit_if(c->co_filename, fn, arg);
  visit_if(c->co_name, fn, arg);
#if PY_VERSION_HEX >= 0x030A0000
  visit_if(c->co_linetable, fn, arg);
#endif
#if PY_VERSION_HEX >= 0x030B0000
  visit_if(c->co_qualname, fn, arg);
  visit_if(c->co_localsplusnames, fn, arg);
  visit_if(c->co_localspluskinds, fn, arg);
  visit_if(c->co_exceptiontable, fn, arg);
#else
  visit_if(c->co_code, fn, arg);
  visit_if(c->co_varnames, fn, arg);
  visit_if(c->co_freevars, fn, arg);
  visit_if(c->co_cellvars, fn, arg);
#if PY_VERSION_HEX < 0x030A0000
  visit_if(c->co_lnotab, fn, arg);
#endif
#endif
}

int tm_is_main_interpreter(void) {
  return PyThreadState_Get()->interp == PyInterpreterState_Main();
}

int tm_is_main_thread(void) { return PyThread_get_thread_ident() == _PyRuntime.main_thread; }

int tm_fork_counts_threads(void) {
#if PY_VERSION_HEX >= 0x030C0000
  return 1;
#else
  return 0;
#endif
}

int tm_call_soon(int (*fn)(void*), void* arg) { return Py_AddPendingCall(fn, arg); }

void tm_gc_counts(long long out[3]) {
  struct _gc_runtime_state* state = gc_state();
  for (int i = 0; i < 3; ++i) out[i] = state->generations[i].count;
}

int tm_is_finalizing(void) {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

long long tm_allocated_blocks(void) {
  PyObject* function = PySys_GetObject("getallocatedblocks");  // Borrowed.
  PyObject* result = function ? PyObject_CallObject(function, NULL) : NULL;
  const long long blocks = result ? PyLong_AsLongLong(result) : -1;
  Py_XDECREF(result);
  if (blocks < 0) PyErr_Clear();
  return blocks;
}
