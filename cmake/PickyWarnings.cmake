# Warnings and hardening flags for every target (STYLE.md 9).
set(ZASLON_WARNINGS
  -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
  -Wpointer-arith -Wundef -Wwrite-strings -Wvla -Wno-unused-parameter)
add_compile_options(${ZASLON_WARNINGS})
if(ZASLON_WERROR)
  add_compile_options(-Werror)
endif()

if(ZASLON_HARDENING)
  add_compile_options(-fstack-protector-strong)
  if(NOT ZASLON_SANITIZE AND NOT ZASLON_FUZZ)
    add_compile_options($<$<NOT:$<CONFIG:Debug>>:-D_FORTIFY_SOURCE=2>)
  endif()
  set(CMAKE_POSITION_INDEPENDENT_CODE ON)
  add_link_options(-pie -Wl,-z,relro,-z,now)
endif()

if(ZASLON_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

if(ZASLON_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "ZASLON_FUZZ needs clang (CC=clang)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
