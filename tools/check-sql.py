#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""check-sql.py: checks that each PostgreSQL statement in the C sources is
given exactly the parameters it uses.

A statement is a run of adjacent C string literals holding SELECT, INSERT,
UPDATE, DELETE or WITH and using $n placeholders, followed by the number of
parameters passed with it (PQexecParams and the project's wrappers:
`"…", 3, values` or a prepared-statement table entry `"…", 3}`).
PostgreSQL refuses a statement whose parameter it cannot type, such as one
passed but never used ("could not determine data type of parameter $3"),
and a placeholder above the count is an error too; both only show when
the statement runs, which for failure paths may be never in a test. So:
every $1 … $n used, none above n.

usage: tools/check-sql.py [FILE...]   (default: the repository's own C
sources and headers, as tools/c-files.sh lists them)
Exit 0 when all agree, 1 when not (each disagreement listed).
"""
import os
import re
import subprocess
import sys

LITERALS = r'(?:"(?:[^"\\\n]|\\.)*"\s*)+'
STATEMENT = re.compile(r'(' + LITERALS + r')\s*,\s*(\d+)\s*[,}]')
SQL_WORD = re.compile(r'\b(SELECT|INSERT|UPDATE|DELETE|WITH)\b')
PIECE = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def check(path):
    """Disagreements in one file, as printable lines; and how many
    statements were checked."""
    text = open(path, encoding='utf-8').read()
    bad, seen = [], 0
    for m in STATEMENT.finditer(text):
        sql = ''.join(PIECE.findall(m.group(1)))
        used = {int(k) for k in re.findall(r'\$(\d+)', sql)}
        n = int(m.group(2))
        if not SQL_WORD.search(sql) or (not used and n == 0):
            continue
        seen += 1
        unused = [k for k in range(1, n + 1) if k not in used]
        above = sorted(k for k in used if k > n)
        if unused or above:
            line = text.count('\n', 0, m.start()) + 1
            why = []
            if unused:
                why.append('passed, never used: ' +
                           ', '.join('$%d' % k for k in unused))
            if above:
                why.append('used, not passed: ' +
                           ', '.join('$%d' % k for k in above))
            bad.append('%s:%d: %d parameter(s); %s: %.80s' %
                       (path, line, n, '; '.join(why), sql))
    return bad, seen


# Each run first proves on these that it finds what it is for.
SAMPLES = r'''
exec(n, "UPDATE t SET a = $1 WHERE id = $2", 2, v);       /* fine */
{"table", "SELECT f($1::uuid, "
          "$2)", 2},                                       /* fine */
exec(n, "INSERT INTO t VALUES ($1, $2, 1, $5)", 5, v);    /* $3, $4 */
exec(n, "DELETE FROM t WHERE a = $1 AND b = $2", 1, v);   /* $2 */
exec(n, "SELECT 1", 1, v);                                /* $1 */
'''


def self_test():
    import tempfile
    with tempfile.NamedTemporaryFile('w', suffix='.c') as f:
        f.write(SAMPLES)
        f.flush()
        bad, seen = check(f.name)
    return seen == 5 and len(bad) == 3 and ', $4' in bad[0] and \
        'not passed: $2' in bad[1] and 'never used: $1' in bad[2]


def main(argv):
    if not self_test():
        print('sql: the check itself is broken (its samples)')
        return 2
    files = argv[1:]
    if not files:
        here = os.path.dirname(os.path.abspath(__file__))
        os.chdir(os.path.dirname(here))
        out = subprocess.run([os.path.join(here, 'c-files.sh')], check=True,
                             capture_output=True, text=True).stdout
        files = out.splitlines()
    bad, seen = [], 0
    for f in files:
        b, s = check(f)
        bad += b
        seen += s
    for line in bad:
        print(line)
    if bad:
        print('sql: FAILED, %d of %d statements disagree with their '
              'parameter count' % (len(bad), seen))
        return 1
    print('sql: ok, %d statements use exactly the parameters they are '
          'given' % seen)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
