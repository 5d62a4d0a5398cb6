#!/bin/sh
# embed.sh FILE NAME: print a C file defining `const char NAME[]` holding FILE's bytes.
set -e
echo "/* generated from $1 by tools/embed.sh; do not edit */"
echo "extern const char $2[];"
echo "const char $2[] = {"
od -An -v -tx1 "$1" | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'
echo "0x00 };"
