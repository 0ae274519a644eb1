// The one exception type of the app library: a one-line message naming the problem and the fix.
#pragma once

#include <stdexcept>
#include <string>

namespace asap {
namespace app {

class Error : public std::runtime_error {
  public:
    explicit Error(std::string const& message) : std::runtime_error(message) {}
};

}  // namespace app
}  // namespace asap
