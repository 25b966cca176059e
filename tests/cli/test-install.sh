#!/bin/sh
# test-install.sh — make install into a DESTDIR puts tools, library, headers,
# man pages and libdm.pc in place; a program builds against it with
# pkg-config and runs; make uninstall removes everything again.
. "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)
root="$T/root"

run make -s -C "$top" install BUILD="$DM_BUILD" DESTDIR="$root" PREFIX=/usr
check "install succeeds" "[ $RC -eq 0 ]"
for f in bin/dm-info bin/dm-schedule lib/libdm.a lib/libdm.so lib/libdm.so.0 \
    include/dm.h include/dm_io.h lib/pkgconfig/libdm.pc \
    share/man/man1/dm-info.1 share/man/man5/dm-tensor.5 share/man/man7/dm.7; do
	check "installed $f" "[ -e '$root/usr/$f' ]"
done
check "pc file names the prefix" "grep -q '^prefix=/usr$' '$root/usr/lib/pkgconfig/libdm.pc'"
check "installed tool runs" "'$root/usr/bin/dm-info' --version | grep -q 'dm toolkit'"

cat >"$T/prog.c" <<'C'
#include <stdio.h>
#include <dm.h>
int
main(void)
{
	struct dm_schedule s;
	if (dm_schedule_from_string(&s, "rf") == -1)
		return 1;
	printf("%s %.2f\n", dm_version(), dm_schedule_alpha(&s, 0.25));
	dm_schedule_free(&s);
	return 0;
}
C
flags=$(PKG_CONFIG_PATH="$root/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root" \
    pkg-config --cflags --libs libdm)
run cc -o "$T/prog" "$T/prog.c" $flags ${DM_SANFLAGS:-}
check "a program compiles against the installed library" "[ $RC -eq 0 ]"
run env LD_LIBRARY_PATH="$root/usr/lib" "$T/prog"
check "and runs" "grep -q '^[0-9.]* 0.75$' '$T/out'"

run make -s -C "$top" uninstall BUILD="$DM_BUILD" DESTDIR="$root" PREFIX=/usr
check "uninstall succeeds" "[ $RC -eq 0 ]"
check "uninstall leaves no files" "[ -z \"\$(find '$root' -type f -o -type l)\" ]"
finish
