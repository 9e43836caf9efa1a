# Every dependency is a Debian 12 package found through pkg-config (or, for
# libhttp-parser which ships no .pc file, find_path/find_library).
find_package(PkgConfig REQUIRED)
find_package(OpenSSL 3.0 REQUIRED)
pkg_check_modules(LIBEVENT REQUIRED IMPORTED_TARGET libevent_core>=2.1 libevent_openssl>=2.1)
pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2>=1.52)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium>=1.0.18)
pkg_check_modules(YAML REQUIRED IMPORTED_TARGET yaml-0.1)
pkg_check_modules(CUNIT REQUIRED IMPORTED_TARGET cunit)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
find_package(Threads REQUIRED)

find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h REQUIRED)
find_library(HTTP_PARSER_LIBRARY http_parser REQUIRED)
add_library(http_parser::http_parser UNKNOWN IMPORTED)
set_target_properties(http_parser::http_parser PROPERTIES
  IMPORTED_LOCATION ${HTTP_PARSER_LIBRARY}
  INTERFACE_INCLUDE_DIRECTORIES ${HTTP_PARSER_INCLUDE_DIR})

# The nghttp2 flood mitigations are detected by symbol, not by version: Debian's
# 1.52.0 carries backports that upstream 1.52.0 lacks.
include(CheckSymbolExists)
set(CMAKE_REQUIRED_INCLUDES ${NGHTTP2_INCLUDE_DIRS})
set(CMAKE_REQUIRED_LIBRARIES ${NGHTTP2_LINK_LIBRARIES})
check_symbol_exists(nghttp2_option_set_stream_reset_rate_limit nghttp2/nghttp2.h
                    ZASLON_HAVE_NGHTTP2_RESET_RATE_LIMIT)
check_symbol_exists(nghttp2_option_set_max_continuations nghttp2/nghttp2.h
                    ZASLON_HAVE_NGHTTP2_MAX_CONTINUATIONS)
unset(CMAKE_REQUIRED_INCLUDES)
unset(CMAKE_REQUIRED_LIBRARIES)
