#include "agent/result.h"

#include <new>

namespace tidemark::agent {
namespace {

struct Row {
  std::string name;
  unsigned long long count, bytes, max_bytes;
};

// No PyObject references: not a GC type, and a walk that meets it has nothing to enter.
struct ResultObject {
  PyObject_HEAD std::string* encoded;
  std::vector<Row>* rows;
};

void Dealloc(PyObject* self) {
  auto* r = reinterpret_cast<ResultObject*>(self);
  delete r->encoded;
  delete r->rows;
  PyTypeObject* type = Py_TYPE(self);
  PyObject_Free(self);
  Py_DECREF(type);  // An instance of a heap type holds a reference to it.
}

// encoded(): the encoded message, as new bytes.
PyObject* Encoded(PyObject* self, PyObject*) {
  const std::string& e = *reinterpret_cast<ResultObject*>(self)->encoded;
  return PyBytes_FromStringAndSize(e.data(), static_cast<Py_ssize_t>(e.size()));
}

// types(): the rows (name, count, bytes, max_bytes), as a new list of tuples.
PyObject* Types(PyObject* self, PyObject*) {
  const std::vector<Row>& rows = *reinterpret_cast<ResultObject*>(self)->rows;
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(rows.size()));
  if (list == nullptr) return nullptr;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& t = rows[i];
    PyObject* row = Py_BuildValue("(sKKK)", t.name.c_str(), t.count, t.bytes, t.max_bytes);
    if (row == nullptr) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), row);
  }
  return list;
}

// The size it stands for, so that sys.getsizeof() of a kept snapshot is honest.
PyObject* SizeOf(PyObject* self, PyObject*) {
  const auto* r = reinterpret_cast<ResultObject*>(self);
  size_t size = sizeof(ResultObject) + sizeof(std::string) + r->encoded->capacity() +
                sizeof(std::vector<Row>) + r->rows->capacity() * sizeof(Row);
  for (const Row& row : *r->rows) size += row.name.capacity();
  return PyLong_FromSize_t(size);
}

PyMethodDef kMethods[] = {
    {"encoded", Encoded, METH_NOARGS, "The encoded snapshot, as new bytes."},
    {"types", Types, METH_NOARGS, "The type rows (name, count, bytes, max_bytes), as a new list."},
    {"__sizeof__", SizeOf, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr}};

PyType_Slot kSlots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(Dealloc)},
    {Py_tp_methods, kMethods},
    {Py_tp_doc, const_cast<char*>("One snapshot's encoded message and type table, held natively.")},
    {0, nullptr}};

PyType_Spec kSpec = {"tidemark._native.Result", sizeof(ResultObject), 0, Py_TPFLAGS_DEFAULT,
                     kSlots};

PyTypeObject* result_type = nullptr;  // Made once, kept for the process's life.

}  // namespace

PyTypeObject* ResultType() {
  if (result_type == nullptr) {
    result_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&kSpec));
  }
  return result_type;
}

PyObject* NewResult(std::string encoded, const std::vector<snapshot::TypeStat>& types) {
  PyTypeObject* type = ResultType();
  if (type == nullptr) return nullptr;
  auto* r = PyObject_New(ResultObject, type);
  if (r == nullptr) return nullptr;
  r->encoded = nullptr;
  r->rows = nullptr;
  try {
    r->encoded = new std::string(std::move(encoded));
    r->rows = new std::vector<Row>();
    for (const snapshot::TypeStat& t : types) {
      if (t.count == 0 && t.bytes == 0) continue;
      r->rows->push_back({t.name, t.count, t.bytes, t.max_bytes});
    }
  } catch (const std::bad_alloc&) {
    Py_DECREF(r);
    return PyErr_NoMemory();
  }
  return reinterpret_cast<PyObject*>(r);
}

}  // namespace tidemark::agent
