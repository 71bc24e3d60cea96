// The native holder of one snapshot taken by tidemark.snapshot(): its encoded message and its
// type table live in C++ memory, not in Python objects, so a Snapshot the program keeps is
// never its own memory in a later walk (one small object, not the rows and bytes it stands
// for). tidemark.Snapshot reads it through methods that build Python objects on each call.
//
// Thread-safety: REQUIRES the GIL, as every Python object.
#pragma once

#include <Python.h>

#include <string>
#include <vector>

#include "snapshot/snapshot.h"

namespace tidemark::agent {

// The type tidemark._native.Result; readies it on first use. nullptr with a Python error set
// if it cannot be readied.
PyTypeObject* ResultType();

// A new Result holding `encoded` and the rows of `types` that count something.
// Returns a new reference, or nullptr with a Python error set.
PyObject* NewResult(std::string encoded, const std::vector<snapshot::TypeStat>& types);

}  // namespace tidemark::agent
