/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * attach.h: the file side of attachments in the bvchat command-line client:
 * what type a local file is (from its content, not its name), the file
 * name an attachment is saved under (from a peer's words: sanitised), and
 * a path for it that never replaces an existing file. No network, no
 * terminal output (bvchat.c shows names with its put_sanitised()).
 */
#ifndef BV_TOOLS_ATTACH_H
#define BV_TOOLS_ATTACH_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of a file name attach_file_name() makes, without " (N)" and the
 * NUL; a buffer of ATTACH_NAME_CAP holds it with either. */
#define ATTACH_NAME_MAX 100
#define ATTACH_NAME_CAP 128

/*
 * The MIME type of the regular file at path, from its first bytes (JPEG,
 * PNG, PDF, WebP, HEIC, MP3, MP4/M4A audio, Ogg, WebM), else "text/plain"
 * when the whole file is UTF-8 without NUL bytes. Sets *type (a static
 * string of the contract's allow list) and *size.
 * Returns 0; -1 with why (cap bytes) set: not a regular file, unreadable,
 * empty, larger than libbvchat encrypts, or a type not on the list.
 */
int attach_sniff(const char *path, const char **type, int64_t *size, char *why,
		 size_t cap);

/*
 * A file name for an attachment called name (a peer's words, any bytes)
 * of MIME type type, into out (ATTACH_NAME_CAP bytes): UTF-8 without
 * control characters, bidi controls, path separators or the characters
 * other systems reserve; no leading dot, space or '-', no trailing dot or
 * space; not a reserved device name (CON, NUL, COM1 …); at most
 * ATTACH_NAME_MAX bytes; always with an extension that fits type (kept
 * when the name has one, else appended: "x.exe" as a PDF is
 * "x.exe.pdf"). Never "" ("vedlegg.EXT" when nothing is left).
 */
void attach_file_name(const char *name, const char *type, char *out);

/*
 * Creates dir/fname, or "STEM (2).EXT" … "STEM (99).EXT" when taken,
 * empty and mode 0600 with O_EXCL (so nothing existing is ever replaced,
 * and a symbolic link is not followed), and writes its path to path (cap
 * bytes). fname: from attach_file_name().
 * Returns 0; -1 with errno set (EEXIST when all 99 are taken).
 */
int attach_reserve(const char *dir, const char *fname, char *path, size_t cap);

/* "512 B", "12.3 kB", "2.9 MB" (powers of 1000) into out. */
void attach_size_str(int64_t size, char *out, size_t cap);

#endif /* BV_TOOLS_ATTACH_H */
