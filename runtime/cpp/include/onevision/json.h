// A minimal JSON reader for artifact manifests (objects, arrays, strings, numbers, booleans, null).
// Not a general-purpose library: UTF-8 passes through, \uXXXX escapes outside ASCII become '?'.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace onevision::json {

struct Value {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  double number = 0.0;
  bool is_integer = false;
  int64_t integer = 0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;

  // Member of an object, or nullptr (also when this is not an object).
  const Value* get(const std::string& key) const;
};

// Parse a whole document; throws std::runtime_error("json: ... at offset N") on malformed input.
Value parse(const std::string& text);

}  // namespace onevision::json
