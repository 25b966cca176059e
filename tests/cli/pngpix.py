#!/usr/bin/python3
"""pngpix.py FILE [X Y ...] -- print "W H" of an 8-bit RGB PNG, then the
"R G B" of each pixel (X, Y) asked for, one per line.
pngpix.py --count R G B FILE X0 Y0 X1 Y1 -- print how many pixels of the
rectangle X0..X1, Y0..Y1 (inclusive) have the colour R G B.
Standard library only (zlib), independent of libpng, for the dm-view
tests."""
import struct
import sys
import zlib


def decode(data):
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    pos, idat, w = 8, b'', None
    while pos < len(data):
        n, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b'IHDR':
            w, h, depth, ctype, _, _, interlace = struct.unpack('>IIBBBBB', body)
            assert depth == 8 and ctype == 2 and interlace == 0, 'not RGB8'
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    raw, bpp, stride = zlib.decompress(idat), 3, 3 * w
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pr) & 255
        rows.append(line)
        prev = line
    return w, h, rows


def count(argv):
    colour = bytes(int(a) for a in argv[:3])
    w, h, rows = decode(open(argv[3], 'rb').read())
    x0, y0, x1, y1 = (int(a) for a in argv[4:8])
    print(sum(rows[y][3 * x:3 * x + 3] == colour
              for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)))


def main():
    if sys.argv[1] == '--count':
        count(sys.argv[2:])
        return
    w, h, rows = decode(open(sys.argv[1], 'rb').read())
    print(w, h)
    args = [int(a) for a in sys.argv[2:]]
    for x, y in zip(args[::2], args[1::2]):
        print(*rows[y][3 * x:3 * x + 3])


if __name__ == '__main__':
    main()
