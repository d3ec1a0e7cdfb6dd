# Writes the text file IN as one C++ raw string literal to OUT (to be #included as an expression).
# Usage: cmake -DIN=src/app/help.txt -DOUT=<build>/generated/app/help_text.inc -P embed_text.cmake
# The help text lives in src/app/help.txt only: --help prints it, scripts/gen_man.py makes gost.1.
if(NOT IN OR NOT OUT)
  message(FATAL_ERROR "usage: cmake -DIN=<text file> -DOUT=<include file> -P embed_text.cmake")
endif()
file(READ "${IN}" text)
set(delim "gost_text")
string(FIND "${text}" ")${delim}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw string delimiter )${delim}\"")
endif()
get_filename_component(name "${IN}" NAME)
set(content "// Generated from src/app/${name} by scripts/embed_text.cmake: edit that file instead.\nR\"${delim}(${text})${delim}\"\n")
# Written only when different, so that an unchanged text rebuilds nothing.
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
  if(old STREQUAL content)
    return()
  endif()
endif()
file(WRITE "${OUT}" "${content}")
