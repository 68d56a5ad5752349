#!/usr/bin/env python3
"""xlsx_readback.py OUTDIR -- the workbooks under OUTDIR read back by
LibreOffice equal the CSV reports beside them (spec outputs.md "Workbooks").

Every sheet of finance.xlsx and of each accounts/*/usage.xlsx is exported to
CSV by `soffice --headless` with a profile that recalculates every formula on
load, so a totals row is checked as LibreOffice computes it.  Then:

  - no cell shows a spreadsheet error (Err:nnn, #NAME?, #VALUE!, ...);
  - each table equals its CSV report, cell for cell (credits as numbers,
    percentages as fractions shown with %, dates as dates, durations as
    [h]:mm, text as text -- a formula-guarded CSV cell 'xxx is the text xxx);
  - the summary metrics above a tab's table and the totals rows equal the
    sums of the CSV columns;
  - the Overview sheet shows overview.csv's figures;
  - vCPU, memory, units and replicas are number cells, though the CSV
    writes vCPU and memory as the rate card does;
  - the charts are in the package (xl/charts/chartN.xml).

Python standard library only.  Exits 1 with one line per difference.
"""
import csv
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

FILTER = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1"
RECALC_ALWAYS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry"
 xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""
ERRORS = re.compile(r"^(Err:\d+|#NAME\?|#VALUE!|#REF!|#DIV/0!|#N/A|#NUM!|#NULL!)$")
GUARD = "=+-@\t\r"

# usage.xlsx: sheet -> the tab CSV it shows, and its metrics (label -> column; None = rows)
USAGE_TABS = {
    "Trend": ("trend.csv", {}),
    "Agents": ("agents.csv", {"Total agents": None, "Total runs": "runs"}),
    "Tools": ("tools.csv", {"Total tools": None, "Total runs": "runs"}),
    "Workflows": ("workflows.csv", {"Total workflows": None, "Total runs": "runs"}),
    "Models": ("models.csv", {"Total models": None, "Total credits": "credits_used",
                              "Fine-tuning credits": "finetune_credits",
                              "Hosting credits": "hosting_credits"}),
    "Guardrails": ("guardrails.csv", {"Total guardrails": None, "Total credits": "credits",
                                      "Time": "deployed_seconds"}),
    "Custom scripts": ("scripts.csv", {"Total scripts": None, "Hosting credits": "credits_used",
                                       "Hosting time": "hosting_seconds"}),
    "OCR": ("ocr.csv", {"Total OCR deployments": None, "Total credits": "credits_used",
                        "Time": "hosting_seconds"}),
    "Browser automation": ("browser.csv", {"Total automations": None,
                                           "Total credits": "credits_used",
                                           "Time": "hosting_seconds"}),
    "Model deployments": ("model_deployments.csv", {"Total deployments": None,
                                                    "Total credits": "credits_used",
                                                    "Fine-tuning credits": "finetune_credits",
                                                    "Hosting time": "hosting_seconds"}),
    "Statement": ("statement.csv", {}),
}
CATEGORIES = [("Models (hosting)", "window_models"), ("Fine-tuning", "window_finetune"),
              ("Guardrails", "window_guardrails"), ("Custom scripts", "window_scripts"),
              ("OCR", "window_ocr"), ("Browser automation", "window_browser")]
SUMMARY = [("Account", "account_id"), ("Name", "account_name"), ("Edition", "edition"),
           ("Cycle start", "cycle_start"), ("Next cycle", "cycle_end"),
           ("Credits total", "credits_total"), ("Credits used", "credits_used"),
           ("Used %", "credits_used_pct"), ("Remaining", "credits_remaining"),
           ("Widget", "widget"), ("Carried to next cycle", "carried_to_next"),
           ("Runs used", "runs_used"), ("Runs total", "runs_total"),
           ("Runs used %", "runs_used_pct")]
USAGE_BY_CATEGORY = [("Account", "account_id"), ("Name", "account_name"),
                     ("Edition", "edition"), ("Window from", "window_from"),
                     ("Window to", "window_to")] + CATEGORIES + [
                    ("Total credits", "window_credits"), ("Runs", "window_runs")]
CARRY = [("Account", "account_id"), ("Name", "account_name"), ("Edition", "edition"),
         ("Cycle start", "cycle_start"), ("Cycle end", "cycle_end"), ("Opening", "opening"),
         ("Granted", "granted"), ("Used", "used"), ("Adjusted", "adjusted"),
         ("Expired", "expired"), ("Late", "late"), ("Closing", "closing"),
         ("Carried to next cycle", "carried_to_next")]

problems = []


def problem(where, text):
    problems.append("%s: %s" % (where, text))


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def number(text):
    try:
        return float(text)
    except ValueError:
        return None


def same(got, want):
    """Does the spreadsheet's cell text 'got' show the CSV cell 'want'?"""
    if want.startswith("'") and len(want) > 1 and want[1] in GUARD:
        want = want[1:]                         # the CSV formula guard
    if got == want:
        return True
    m = re.match(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)Z$", want)
    if m:
        return got == "%s %s" % m.groups()
    m = re.match(r"^(-?)(\d+):(\d\d):(\d\d)( AM| PM)?$", got)
    if m and re.match(r"^-?\d+$", want):        # a duration: [h]:mm, under a day as a time
        hours = int(m.group(2)) % 12 + (12 if m.group(5) == " PM" else 0) \
            if m.group(5) else int(m.group(2))
        sec = hours * 3600 + int(m.group(3)) * 60 + int(m.group(4))
        return (-sec if m.group(1) else sec) == int(want)
    if got.endswith("%") and number(got[:-1]) is not None and number(want) is not None:
        return abs(number(got[:-1]) - number(want)) < 0.005
    g, w = number(got), number(want)
    if g is not None and w is not None:
        return abs(g - w) <= 1e-6 * max(1.0, abs(w))
    return False


def cell(row, i):
    return row[i] if i < len(row) else ""


def find_table(rows, ncols, where):
    """The header row: the first from row 3 with ncols non-empty text cells."""
    for r in range(3, len(rows)):
        cells = [c for c in rows[r] if c != ""]
        if len(cells) == ncols and all(number(c) is None for c in cells):
            return r
    problem(where, "no table of %d columns" % ncols)
    return None


def column_sum(data, header, column):
    i = header.index(column)
    return sum(number(r[i]) or 0.0 for r in data)


def text_of(x):
    """A sum as a CSV would write it: whole numbers without a fraction."""
    return str(int(x)) if float(x).is_integer() else repr(x)


def check_metrics(rows, top, header, data, metrics, where):
    for r in range(3, top):
        label = cell(rows[r], 0)
        if label == "":
            continue
        if label not in metrics:
            problem(where, "unknown metric %r" % label)
            continue
        column = metrics[label]
        want = len(data) if column is None else column_sum(data, header, column)
        if not same(cell(rows[r], 1), text_of(want)):
            problem(where, "metric %r shows %r, the CSV gives %r" % (label, cell(rows[r], 1), want))


def check_totals(rows, r, header, data, columns, where):
    """A totals row: 'Total' and, under each summed column, the CSV column's sum."""
    if r >= len(rows) or cell(rows[r], 0) != "Total":
        problem(where, "no totals row")
        return
    for i, column in enumerate(columns):
        got = cell(rows[r], i)
        if i == 0 or got == "":
            continue
        want = column_sum(data, header, column)
        if not same(got, text_of(want)):
            problem(where, "total of %s shows %r, the CSV sums to %r" % (column, got, want))


def check_positional(rows, csv_path, where, metrics=None):
    """A sheet table with the CSV's columns in the CSV's order."""
    header, data = read_csv(csv_path)
    top = find_table(rows, len(header), where)
    if top is None:
        return
    for n, want in enumerate(data):
        got = rows[top + 1 + n] if top + 1 + n < len(rows) else []
        for i, w in enumerate(want):
            if not same(cell(got, i), w):
                problem(where, "row %d %s: sheet %r, CSV %r" % (n + 1, header[i], cell(got, i), w))
    if metrics is not None:
        check_metrics(rows, top, header, data, metrics, where)


def check_mapped(rows, mapping, header, data, where, totals):
    """A sheet table whose columns are named CSV columns ('mapping': title, column)."""
    top = find_table(rows, len(mapping), where)
    if top is None:
        return
    titles = [t for t, _ in mapping]
    if rows[top][:len(titles)] != titles:
        problem(where, "header %r, expected %r" % (rows[top], titles))
    for n, want in enumerate(data):
        got = rows[top + 1 + n] if top + 1 + n < len(rows) else []
        for i, (_, column) in enumerate(mapping):
            w = want[header.index(column)]
            if not same(cell(got, i), w):
                problem(where, "row %d %s: sheet %r, CSV %r" % (n + 1, column, cell(got, i), w))
    if totals:
        check_totals(rows, top + 1 + len(data), header, data, [c for _, c in mapping], where)


def check_overview(rows, overview_csv, where):
    header, data = read_csv(overview_csv)
    ov = dict(zip(header, data[0]))
    labels = {}
    for row in rows:
        labels.setdefault(cell(row, 0), []).append(row)
    runs_label = {"gale": "Agent runs", "agent-platform": "Tool runs",
                  "process": "Workflow runs"}[ov["edition"]]
    expect = [(runs_label, 0, ["runs_used", "runs_total", "runs_used_pct", "runs_remaining"]),
              ("Model credits", 0, ["credits_used", "credits_total", "credits_used_pct",
                                    "credits_remaining", "credits_remaining_pct"]),
              ("Cycle start", 0, ["cycle_start"]), ("Next cycle starts", 0, ["cycle_end"]),
              ("Credits status", 0, ["widget"]), ("Credits banner", 0, ["banner_credits"]),
              ("Runs banner", 0, ["banner_runs"]), ("Window from", 0, ["window_from"]),
              ("Window to", 0, ["window_to"]), ("Total credits", 0, ["window_credits"]),
              (runs_label, 1, ["window_runs"])]
    expect += [(title, 0, [column]) for title, column in CATEGORIES
               if title in labels or float(ov[column]) != 0]
    for label, k, columns in expect:
        found = labels.get(label, [])
        if len(found) <= k:
            problem(where, "no row %r" % label)
            continue
        for i, column in enumerate(columns):
            if not same(cell(found[k], 1 + i), ov[column]):
                problem(where, "%s %s: sheet %r, overview.csv %r"
                        % (label, column, cell(found[k], 1 + i), ov[column]))


def check_charts(path, count):
    names = set(zipfile.ZipFile(path).namelist())
    for i in range(1, count + 1):
        if "xl/charts/chart%d.xml" % i not in names:
            problem(path, "no xl/charts/chart%d.xml" % i)


# columns of figures that must be number cells ("numbers stored as numbers"),
# whatever the CSV shows: the CSV keeps the rate card's vCPU and memory as
# written, the sheet their values
NUMERIC_TITLES = {"vCPU", "Memory (GB)", "Units", "Replicas"}
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
      "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships"}


def sheet_xml(book):
    """{sheet name: its worksheet XML root} of one .xlsx."""
    import xml.etree.ElementTree as ET
    z = zipfile.ZipFile(book)
    rels = {r.get("Id"): r.get("Target") for r in
            ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))}
    result = {}
    for sh in ET.fromstring(z.read("xl/workbook.xml")).iter("{%s}sheet" % NS["m"]):
        target = rels[sh.get("{%s}id" % NS["r"])].lstrip("/")
        result[sh.get("name")] = ET.fromstring(z.read(target if target.startswith("xl/")
                                                      else "xl/" + target))
    return result, [si.findtext(".//m:t", "", NS) for si in
                    ET.fromstring(z.read("xl/sharedStrings.xml")).iter("{%s}si" % NS["m"])]


def check_number_cells(book, where):
    """Cells under a NUMERIC_TITLES header are numbers, never strings."""
    found = 0
    roots, strings = sheet_xml(book)
    for name, root in roots.items():
        columns = {}
        for c in root.iter("{%s}c" % NS["m"]):
            col = re.match(r"[A-Z]+", c.get("r")).group(0)
            text = c.findtext("m:v", "", NS)
            if c.get("t") == "s" and strings[int(text)] in NUMERIC_TITLES:
                columns[col] = strings[int(text)]
            elif col in columns and c.get("t") in ("s", "str", "inlineStr"):
                problem(where, "%s!%s (%s) is a text cell" % (name, c.get("r"), columns[col]))
            elif col in columns:
                found += 1
    return found


def export(books, work):
    """All sheets of all books to work/csv/<book>-<sheet>.csv in one soffice run."""
    profile = os.path.join(work, "profile")
    os.makedirs(os.path.join(profile, "user"))
    with open(os.path.join(profile, "user", "registrymodifications.xcu"), "w") as f:
        f.write(RECALC_ALWAYS)
    out = os.path.join(work, "csv")
    subprocess.run(["soffice", "-env:UserInstallation=file://" + profile, "--headless",
                    "--convert-to", FILTER, "--outdir", out] + books,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


CONTINUED = re.compile(r"^(.*) \((\d+)\)$")


def sheets(out, book):
    """{sheet name: rows} of one exported book.  A table too long for one
    sheet goes on in "NAME (2)", "NAME (3)" ... with the header again: their
    rows are appended to NAME's, headers dropped, so NAME holds the whole
    table (and its totals row, on the last part, sums every part)."""
    stem = os.path.splitext(os.path.basename(book))[0]
    result, parts = {}, {}
    for path in glob.glob(os.path.join(glob.escape(out), glob.escape(stem) + "-*.csv")):
        name = os.path.basename(path)[len(stem) + 1:-4]
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        m = CONTINUED.match(name)
        if m:
            parts.setdefault(m.group(1), []).append((int(m.group(2)), rows))
        else:
            result[name] = rows
    for name, more in parts.items():
        base = result.setdefault(name, [])
        while base and not any(base[-1]):
            base.pop()                  # LibreOffice pads a sheet's export to its used width only
        for _, rows in sorted(more):
            base.extend(rows[1:])
    return result


def check_errors(book_sheets, where):
    for name, rows in book_sheets.items():
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                if ERRORS.match(text):
                    problem(where, "%s!R%dC%d shows %s" % (name, r + 1, c + 1, text))


def main():
    outdir = sys.argv[1]
    work = tempfile.mkdtemp(prefix="tally-readback-")
    try:
        copies = {}
        numbers = 0
        accounts = sorted(glob.glob(os.path.join(glob.escape(outdir), "accounts", "*")))
        books = [os.path.join(work, "finance.xlsx")]
        shutil.copy(os.path.join(outdir, "finance.xlsx"), books[0])
        for acct in accounts:
            copy = os.path.join(work, "usage_" + os.path.basename(acct) + ".xlsx")
            shutil.copy(os.path.join(acct, "usage.xlsx"), copy)
            copies[acct] = copy
            books.append(copy)
        out = export(books, work)

        fin = sheets(out, books[0])
        check_errors(fin, "finance.xlsx")
        check_charts(books[0], 1)
        for sheet, file in [("Statements", "statements.csv"),
                            ("Discrepancies", "discrepancies.csv"), ("Rejects", "rejects.csv")]:
            if sheet not in fin:
                problem("finance.xlsx", "no sheet %r" % sheet)
            else:
                check_positional(fin[sheet], os.path.join(outdir, file), "finance.xlsx " + sheet)
        sh, sd = read_csv(os.path.join(outdir, "summary.csv"))
        th, td = read_csv(os.path.join(outdir, "statements.csv"))
        stmt = {(r[0], r[1], r[2]): dict(zip(th, r)) for r in td}
        summary_rows = []
        for r in sd:
            row = dict(zip(sh, r))
            row["carried_to_next"] = stmt.get((row["account_id"], "credits", row["cycle_start"]),
                                              {}).get("carried_to_next", "0.000000")
            summary_rows.append(row)
        names = {r["account_id"]: r for r in summary_rows}
        cols = [c for _, c in SUMMARY]
        check_mapped(fin.get("Summary", []), SUMMARY, cols,
                     [[r[c] for c in cols] for r in summary_rows], "finance.xlsx Summary", True)
        cols = [c for _, c in USAGE_BY_CATEGORY]
        check_mapped(fin.get("Usage by category", []), USAGE_BY_CATEGORY, cols,
                     [[r[c] for c in cols] for r in summary_rows],
                     "finance.xlsx Usage by category", True)
        cols = [c for _, c in CARRY]
        carried = []
        for r in td:
            row = dict(zip(th, r))
            if row["pool"] == "credits" and row["state"] == "closed" \
                    and float(row["carried_to_next"]) < 0:
                acct = names.get(row["account_id"], {})
                row["account_name"] = acct.get("account_name", "")
                row["edition"] = acct.get("edition", "")
                carried.append([row[c] for c in cols])
        check_mapped(fin.get("Carry-over", []), CARRY, cols, carried, "finance.xlsx Carry-over",
                     True)

        for acct in accounts:
            where = "accounts/%s/usage.xlsx" % os.path.basename(acct)
            book = sheets(out, copies[acct])
            check_errors(book, where)
            check_charts(copies[acct], 3)
            numbers += check_number_cells(copies[acct], where)
            if "Overview" not in book:
                problem(where, "no Overview sheet")
            else:
                check_overview(book["Overview"], os.path.join(acct, "overview.csv"), where)
            for sheet, (file, metrics) in USAGE_TABS.items():
                path = os.path.join(acct, file)
                if os.path.exists(path) != (sheet in book):
                    problem(where, "sheet %r and file %s do not go together" % (sheet, file))
                elif sheet in book:
                    check_positional(book[sheet], path, where + " " + sheet, metrics)
            print("ok   %s (%d sheets)" % (where, len(book)))
        print("ok   finance.xlsx (%d sheets)" % len(fin))
        if os.path.exists(os.path.join(outdir, "accounts", "ap-contoso", "scripts.csv")) \
                and not numbers:
            problem(outdir, "no vCPU, memory, units or replicas cell found to check")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        print("FAIL " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
