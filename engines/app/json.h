// A small strict JSON reader (RFC 8259) for the export's manifest.json and the engine sidecar:
// enough to read settings, with errors that say where the document is broken. Not a general
// library: no writer, numbers are kept as text and converted on request.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace asap {
namespace app {

class Json {
  public:
    enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

    // Parses a whole document; throws Error("<what>: invalid JSON at line L, column C: ...").
    static Json parse(std::string const& text, std::string const& what = "JSON");
    static Json parseFile(std::string const& path);

    Type type() const { return mType; }
    bool isNull() const { return mType == Type::kNull; }
    bool isObject() const { return mType == Type::kObject; }
    bool isArray() const { return mType == Type::kArray; }
    bool isString() const { return mType == Type::kString; }
    bool isNumber() const { return mType == Type::kNumber; }
    bool isBool() const { return mType == Type::kBool; }

    // Typed accessors; `path` names the value in errors (e.g. "manifest.json: config.label_nc").
    bool asBool(std::string const& path) const;
    int64_t asInt(std::string const& path) const;
    double asDouble(std::string const& path) const;
    std::string const& asString(std::string const& path) const;
    std::vector<Json> const& items(std::string const& path) const;  // array elements

    // Object members; find() returns nullptr when absent, at() throws naming `path`.
    Json const* find(std::string const& key) const;
    Json const& at(std::string const& key, std::string const& path) const;
    std::vector<std::pair<std::string, Json>> const& members(std::string const& path) const;

    static char const* typeName(Type t);
    // "file.json:" + "height" -> "file.json: height"; "file.json: config" -> "... config.label_nc"
    static std::string memberPath(std::string const& path, std::string const& key);

  private:
    friend class JsonParser;
    Type mType = Type::kNull;
    bool mBool = false;
    std::string mText;  // string value, or the number's literal
    std::vector<Json> mItems;
    std::vector<std::pair<std::string, Json>> mMembers;
};

}  // namespace app
}  // namespace asap
