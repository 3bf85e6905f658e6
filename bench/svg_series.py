# SPDX-License-Identifier: MIT
"""SVG pieces shared by the bench report scripts: a data series and its legend entry."""


def series(out, points, colour, width=2, dash=""):
    """Appends a polyline through points [(x, y)] in SVG coordinates; dash e.g. "6 4"."""
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    out.append('<polyline points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) +
               f'" fill="none" stroke="{colour}" stroke-width="{width}"{dash_attr}/>')


def legend(out, x, y, colour, label, width=2, dash=""):
    """Appends a legend entry (a short line, then the label) at (x, y)."""
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    out.append(f'<line x1="{x}" x2="{x + 25}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="{width}"{dash_attr}/>')
    out.append(f'<text x="{x + 30}" y="{y + 4}">{label}</text>')


def write(out, path):
    """Closes the SVG begun in out and writes it to path."""
    with open(path, "w") as f:
        f.write("\n".join(out + ["</svg>"]) + "\n")
