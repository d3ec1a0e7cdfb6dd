#!/usr/bin/python3
"""Makes the man page gost.1 from src/app/help.txt, the text `gost --help` prints.

Usage: gen_man.py HELP_TXT VERSION OUTPUT

The layout conventions of help.txt, which this script relies on:
  - line 1 is "gost - <summary>" (NAME);
  - a paragraph starting "Usage: " (continued by indented lines) is the SYNOPSIS;
  - other paragraphs before the first heading are the DESCRIPTION;
  - a heading is an unindented line ending with ":" ("Flags:" becomes OPTIONS);
  - an entry is a line indented by 2 spaces (a flag with its argument, a variable, a
    description of an example) and its body the following lines indented by 4 or more;
  - body lines that are commands ("gost ..." or "Example...: gost ...") or are indented deeper
    than the body's text (by 8 or more) are kept as they are; other body lines and unindented
    paragraphs are text that man may refill.
Only the Python standard library is used.
"""

import re
import sys

SECTION_NAMES = {"Flags": "OPTIONS"}


def esc(text):
    """Escapes text for roff: backslashes, dashes (so that they stay ASCII minus)."""
    return text.replace("\\", "\\e").replace("-", "\\-")


def line_start(text):
    """Protects a line beginning with a roff control character."""
    return "\\&" + text if text[:1] in (".", "'") else text


def is_command(text):
    return text.startswith("gost ") or re.match(r"Example[^:]*: gost ", text) is not None


def command_line(text):
    """An example line: the label plain, the command in bold."""
    m = re.match(r"(Example[^:]*: )(gost .*)", text)
    if m:
        return line_start(esc(m.group(1))) + "\\fB" + esc(m.group(2)) + "\\fR"
    if text.startswith("gost "):
        return "\\fB" + esc(text) + "\\fR"
    return line_start(esc(text))


def term(text):
    """An entry: flags and variable names bold, a flag's argument italic, other text plain."""
    if text.startswith("-"):
        out = []
        for part in text.split(", "):
            words = part.split(" ", 1)
            s = "\\fB" + esc(words[0]) + "\\fR"
            if len(words) > 1:
                s += " \\fI" + esc(words[1]) + "\\fR"
            out.append(s)
        return ", ".join(out)
    if re.fullmatch(r"[A-Z0-9_]+(, [A-Z0-9_]+)*", text):
        return "\\fB" + esc(text) + "\\fR"
    return line_start(esc(text))


def convert(lines, version):
    if not lines or " - " not in lines[0]:
        raise SystemExit("help text: line 1 must be 'gost - <summary>'")
    name, summary = lines[0].split(" - ", 1)
    out = [
        '.\\" Generated from src/app/help.txt by scripts/gen_man.py: edit that file instead.',
        '.TH GOST 1 "" "gost %s" "User Commands"' % version,
        ".SH NAME",
        "%s \\- %s" % (esc(name), esc(summary)),
    ]
    state = "para"  # para | body-text | body-nf (inside .nf)
    seen_heading = False
    described = False

    def fill():
        nonlocal state
        if state == "body-nf":
            out.append(".fi")
        state = "para"

    i = 1
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if not stripped:
            fill()
            i += 1
            continue
        if stripped.startswith("Usage: ") and indent == 0:
            out += [".SH SYNOPSIS", ".nf"]
            out.append("\\fB" + esc(stripped[len("Usage: "):]) + "\\fR")
            i += 1
            while i < len(lines) and lines[i].startswith(" ") and lines[i].strip():
                out.append("\\fB" + esc(lines[i].strip()) + "\\fR")
                i += 1
            out.append(".fi")
            continue
        if indent == 0 and stripped.endswith(":"):
            fill()
            title = stripped[:-1]
            out.append('.SH "%s"' % SECTION_NAMES.get(title, title.upper()))
            seen_heading = True
            i += 1
            continue
        if indent == 0:
            if not seen_heading and not described:
                out.append(".SH DESCRIPTION")
                described = True
            fill()
            out += [".PP", line_start(esc(stripped))]
            i += 1
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(" ") \
                    and not lines[i].rstrip().endswith(":"):
                out.append(line_start(esc(lines[i].strip())))
                i += 1
            continue
        if indent == 2:
            fill()
            out += [".TP", term(stripped)]
            state = "body-text"
            i += 1
            continue
        # body line (indent >= 4)
        if is_command(stripped) or indent >= 8:
            if state != "body-nf":
                out.append(".nf")
                state = "body-nf"
            out.append(command_line(stripped))
        else:
            if state == "body-nf":
                out.append(".fi")
                state = "body-text"
            out.append(line_start(esc(stripped)))
        i += 1
    fill()
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        lines = f.read().splitlines()
    text = convert(lines, sys.argv[2])
    with open(sys.argv[3], "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
