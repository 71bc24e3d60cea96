#include <iostream>

#include "cli/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return tidemark::cli::Main(args, std::cout, std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "tidemark: " << e.what() << "\n";
    return 1;
  }
}
