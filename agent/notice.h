// Notices: the agent's trouble in the background, said to the program's stdlib logging
// logger "tidemark" (quiet unless the program configures logging; TIDEMARK_DEBUG also prints
// them). The reporter thread hands a message to the main thread as a pending call
// (tm_call_soon), which calls tidemark._report_trouble(message): no Python runs on the
// reporter thread, and a program that never runs Python again is never interrupted.
//
// Thread-safety: LogNotice may be called from any thread, with or without the GIL.
#pragma once

#include <string>

namespace tidemark::agent {

// Queues `message` for the logger. A message is lost, never blocking, if CPython's pending
// call queue is full or the interpreter is finalizing.
void LogNotice(const std::string& message);

}  // namespace tidemark::agent
