#!/usr/bin/env python3
"""Derive deb-src apt entries from the machine's existing binary (deb) sources.

Usage: derive_deb_src.py OUT_SOURCES_LIST OUT_PARTS_DIR

Reads /etc/apt/sources.list (one-line format) and /etc/apt/sources.list.d/
(*.list one-line files and *.sources deb822 files) and writes the matching
deb-src entries:
  * one-line entries -> OUT_SOURCES_LIST
  * deb822 stanzas   -> OUT_PARTS_DIR/pyruntime-src.sources
No host name is hard-coded: every URI comes from the machine's config.
Exits 1 when no usable entry was found.
"""
import glob
import os
import sys

APT_ETC = "/etc/apt"


def one_line_entries(path):
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line.startswith("deb ") or line.startswith("deb\t"):
                    out.append("deb-src" + line[3:])
    except OSError:
        pass
    return out


def deb822_stanzas(path):
    """Yield stanzas as lists of (field, value-lines) preserving continuation lines."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return
    stanza = []
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanza:
                yield stanza
            stanza = []
            continue
        if raw[0] in " \t" and stanza:
            stanza[-1][1].append(raw)
        elif ":" in raw:
            key, val = raw.split(":", 1)
            stanza.append([key.strip(), [val.strip()]])
    return


def convert_stanza(stanza):
    fields = {k.lower(): v for k, v in stanza}
    types = " ".join(fields.get("types", [""])).split()
    if "deb" not in types:
        return None
    if " ".join(fields.get("enabled", ["yes"])).strip().lower() == "no":
        return None
    lines = ["Types: deb-src"]
    for key, vals in stanza:
        if key.lower() == "types":
            continue
        lines.append(f"{key}: {vals[0]}")
        lines.extend(vals[1:])
    return "\n".join(lines)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    out_list, out_parts = sys.argv[1], sys.argv[2]

    one_line = one_line_entries(os.path.join(APT_ETC, "sources.list"))
    for path in sorted(glob.glob(os.path.join(APT_ETC, "sources.list.d", "*.list"))):
        one_line += one_line_entries(path)

    stanzas = []
    for path in sorted(glob.glob(os.path.join(APT_ETC, "sources.list.d", "*.sources"))):
        for st in deb822_stanzas(path):
            conv = convert_stanza(st)
            if conv:
                stanzas.append(conv)

    os.makedirs(out_parts, exist_ok=True)
    with open(out_list, "w") as f:
        f.write("\n".join(one_line) + ("\n" if one_line else ""))
    with open(os.path.join(out_parts, "pyruntime-src.sources"), "w") as f:
        f.write("\n\n".join(stanzas) + ("\n" if stanzas else ""))

    if not one_line and not stanzas:
        print("derive_deb_src: no 'deb' entries found in apt sources", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
