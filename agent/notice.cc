#include "agent/notice.h"

#include "agent/compat.h"
// compat.h brings Python.h first, as CPython requires.

namespace tidemark::agent {
namespace {

// A pending call: on the main thread, the GIL held, between two bytecodes (no exception is
// being raised). Never fails: a -1 would raise in the program's own code.
int LogOnMainThread(void* arg) {
  std::string* message = static_cast<std::string*>(arg);
  if (!tm_is_finalizing()) {
    PyObject* module = PyImport_ImportModule("tidemark");
    PyObject* result =
        module ? PyObject_CallMethod(module, "_report_trouble", "s", message->c_str()) : nullptr;
    Py_XDECREF(result);
    Py_XDECREF(module);
    PyErr_Clear();
  }
  delete message;
  return 0;
}

}  // namespace

void LogNotice(const std::string& message) {
  if (tm_is_finalizing()) return;
  auto* copy = new std::string(message);
  if (tm_call_soon(&LogOnMainThread, copy) != 0) delete copy;
}

}  // namespace tidemark::agent
