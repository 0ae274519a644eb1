#include "json.h"

#include "error.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

namespace asap {
namespace app {

namespace {
constexpr int kMaxDepth = 64;  // the manifest nests 5 deep; deeper input is malformed or hostile
}

class JsonParser {
  public:
    JsonParser(std::string const& text, std::string const& what) : mText(text), mWhat(what) {}

    Json document() {
        skipSpace();
        Json value = parseValue(0);
        skipSpace();
        if (mPos != mText.size()) fail("unexpected text after the end of the document");
        return value;
    }

  private:
    std::string const& mText;
    std::string const& mWhat;
    size_t mPos = 0;

    [[noreturn]] void fail(std::string const& message) const {
        size_t line = 1, column = 1;
        for (size_t i = 0; i < mPos && i < mText.size(); ++i) {
            if (mText[i] == '\n') {
                ++line;
                column = 1;
            } else {
                ++column;
            }
        }
        throw Error(mWhat + ": invalid JSON at line " + std::to_string(line) + ", column " + std::to_string(column) +
                    ": " + message);
    }

    bool atEnd() const { return mPos >= mText.size(); }
    char peek() const { return atEnd() ? '\0' : mText[mPos]; }

    void skipSpace() {
        while (!atEnd() && (mText[mPos] == ' ' || mText[mPos] == '\t' || mText[mPos] == '\n' || mText[mPos] == '\r'))
            ++mPos;
    }

    void expect(char c) {
        if (peek() != c) fail(std::string("expected '") + c + "'" + found());
        ++mPos;
    }

    std::string found() const {
        if (atEnd()) return ", found the end of the document";
        char const c = mText[mPos];
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
            return ", found byte " + std::to_string(static_cast<unsigned char>(c));
        return std::string(", found '") + c + "'";
    }

    Json parseValue(int depth) {
        if (depth > kMaxDepth) fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
        Json v;
        char const c = peek();
        if (c == '{') {
            v.mType = Json::Type::kObject;
            ++mPos;
            skipSpace();
            if (peek() == '}') {
                ++mPos;
                return v;
            }
            for (;;) {
                skipSpace();
                if (peek() != '"') fail("expected a member name in double quotes" + found());
                size_t const keyPos = mPos;
                std::string key = parseString();
                for (auto const& m : v.mMembers) {
                    if (m.first == key) {
                        mPos = keyPos;
                        fail("duplicate member \"" + key + "\"");
                    }
                }
                skipSpace();
                expect(':');
                skipSpace();
                v.mMembers.emplace_back(std::move(key), parseValue(depth + 1));
                skipSpace();
                if (peek() == ',') {
                    ++mPos;
                    continue;
                }
                if (peek() == '}') {
                    ++mPos;
                    return v;
                }
                fail("expected ',' or '}' in an object" + found());
            }
        }
        if (c == '[') {
            v.mType = Json::Type::kArray;
            ++mPos;
            skipSpace();
            if (peek() == ']') {
                ++mPos;
                return v;
            }
            for (;;) {
                skipSpace();
                v.mItems.push_back(parseValue(depth + 1));
                skipSpace();
                if (peek() == ',') {
                    ++mPos;
                    continue;
                }
                if (peek() == ']') {
                    ++mPos;
                    return v;
                }
                fail("expected ',' or ']' in an array" + found());
            }
        }
        if (c == '"') {
            v.mType = Json::Type::kString;
            v.mText = parseString();
            return v;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            v.mType = Json::Type::kNumber;
            v.mText = parseNumber();
            return v;
        }
        if (literal("true")) {
            v.mType = Json::Type::kBool;
            v.mBool = true;
            return v;
        }
        if (literal("false")) {
            v.mType = Json::Type::kBool;
            return v;
        }
        if (literal("null")) return v;
        fail("expected a value" + found());
    }

    bool literal(char const* word) {
        size_t const n = std::char_traits<char>::length(word);
        if (mText.compare(mPos, n, word) != 0) return false;
        mPos += n;
        return true;
    }

    std::string parseNumber() {
        size_t const start = mPos;
        if (peek() == '-') ++mPos;
        if (peek() == '0') {
            ++mPos;
        } else if (peek() >= '1' && peek() <= '9') {
            while (peek() >= '0' && peek() <= '9') ++mPos;
        } else {
            fail("expected a digit" + found());
        }
        if (peek() == '.') {
            ++mPos;
            if (!(peek() >= '0' && peek() <= '9')) fail("expected a digit after '.'" + found());
            while (peek() >= '0' && peek() <= '9') ++mPos;
        }
        if (peek() == 'e' || peek() == 'E') {
            ++mPos;
            if (peek() == '+' || peek() == '-') ++mPos;
            if (!(peek() >= '0' && peek() <= '9')) fail("expected a digit in the exponent" + found());
            while (peek() >= '0' && peek() <= '9') ++mPos;
        }
        return mText.substr(start, mPos - start);
    }

    unsigned hex4() {
        unsigned value = 0;
        for (int i = 0; i < 4; ++i) {
            char const c = peek();
            unsigned d;
            if (c >= '0' && c <= '9')
                d = static_cast<unsigned>(c - '0');
            else if (c >= 'a' && c <= 'f')
                d = static_cast<unsigned>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                d = static_cast<unsigned>(c - 'A' + 10);
            else
                fail("expected 4 hex digits after \\u" + found());
            value = value * 16 + d;
            ++mPos;
        }
        return value;
    }

    static void appendUtf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xc0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xe0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        } else {
            out += static_cast<char>(0xf0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        }
    }

    std::string parseString() {
        expect('"');
        std::string out;
        for (;;) {
            if (atEnd()) fail("unterminated string");
            char const c = mText[mPos];
            if (c == '"') {
                ++mPos;
                return out;
            }
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string (escape it)");
            if (c != '\\') {
                out += c;
                ++mPos;
                continue;
            }
            ++mPos;
            char const e = peek();
            ++mPos;
            switch (e) {
                case '"':
                    out += '"';
                    break;
                case '\\':
                    out += '\\';
                    break;
                case '/':
                    out += '/';
                    break;
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xd800 && cp <= 0xdbff) {  // high surrogate: a low one must follow
                        if (!literal("\\u")) fail("unpaired UTF-16 surrogate in \\u escape");
                        unsigned const low = hex4();
                        if (low < 0xdc00 || low > 0xdfff) fail("unpaired UTF-16 surrogate in \\u escape");
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                        fail("unpaired UTF-16 surrogate in \\u escape");
                    }
                    appendUtf8(out, cp);
                    break;
                }
                default:
                    --mPos;
                    fail("invalid escape in a string" + found());
            }
        }
    }
};

Json Json::parse(std::string const& text, std::string const& what) { return JsonParser(text, what).document(); }

Json Json::parseFile(std::string const& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) throw Error(path + ": cannot open (does the file exist and is it readable?)");
    std::ostringstream text;
    text << file.rdbuf();
    if (file.bad()) throw Error(path + ": read error");
    return parse(text.str(), path);
}

char const* Json::typeName(Type t) {
    switch (t) {
        case Type::kNull:
            return "null";
        case Type::kBool:
            return "a boolean";
        case Type::kNumber:
            return "a number";
        case Type::kString:
            return "a string";
        case Type::kArray:
            return "an array";
        case Type::kObject:
            return "an object";
    }
    return "?";
}

namespace {
[[noreturn]] void wrongType(std::string const& path, char const* wanted, Json::Type got) {
    throw Error(path + " must be " + wanted + ", not " + Json::typeName(got));
}
}  // namespace

bool Json::asBool(std::string const& path) const {
    if (mType != Type::kBool) wrongType(path, "a boolean", mType);
    return mBool;
}

int64_t Json::asInt(std::string const& path) const {
    if (mType != Type::kNumber) wrongType(path, "an integer", mType);
    int64_t value = 0;
    auto const* end = mText.data() + mText.size();
    auto const result = std::from_chars(mText.data(), end, value);
    if (result.ec == std::errc() && result.ptr == end) return value;
    // 5.0 or 1e3 are integers too; anything fractional or out of range is not
    double const d = asDouble(path);
    if (std::floor(d) == d && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
    throw Error(path + " must be an integer, not " + mText);
}

double Json::asDouble(std::string const& path) const {
    if (mType != Type::kNumber) wrongType(path, "a number", mType);
    double value = 0;
    auto const* end = mText.data() + mText.size();
    auto const result = std::from_chars(mText.data(), end, value);  // locale-independent
    if (result.ec != std::errc() || result.ptr != end) throw Error(path + ": number out of range: " + mText);
    return value;
}

std::string const& Json::asString(std::string const& path) const {
    if (mType != Type::kString) wrongType(path, "a string", mType);
    return mText;
}

std::vector<Json> const& Json::items(std::string const& path) const {
    if (mType != Type::kArray) wrongType(path, "an array", mType);
    return mItems;
}

std::vector<std::pair<std::string, Json>> const& Json::members(std::string const& path) const {
    if (mType != Type::kObject) wrongType(path, "an object", mType);
    return mMembers;
}

std::string Json::memberPath(std::string const& path, std::string const& key) {
    return path + (!path.empty() && path.back() == ':' ? " " : ".") + key;
}

Json const* Json::find(std::string const& key) const {
    if (mType != Type::kObject) return nullptr;
    for (auto const& m : mMembers)
        if (m.first == key) return &m.second;
    return nullptr;
}

Json const& Json::at(std::string const& key, std::string const& path) const {
    if (mType != Type::kObject) wrongType(path, "an object", mType);
    Json const* v = find(key);
    if (!v) throw Error(memberPath(path, key) + " is missing");
    return *v;
}

}  // namespace app
}  // namespace asap
