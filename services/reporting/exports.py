"""Exports of the statistics: CSV and XLSX with Indonesian headers, and the monthly recap
"Laporan Bulanan Dumas" as a printable PDF (tables and charts, reportlab)."""

import csv
import io
from datetime import date

from shared.catalogue import CATEGORY_BY_CODE, CHANNELS, CONFIDENTIALITY, STATUSES

MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
          "September", "Oktober", "November", "Desember")


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:.1f}%".replace(".", ",")


def _num(value) -> str:
    return "-" if value is None else str(value)


def _category(code: str) -> str:
    c = CATEGORY_BY_CODE.get(code)
    return c.name if c else code


def tables(stats: dict) -> list[tuple[str, list[str], list[list]]]:
    """The statistics as titled tables: (title, headers, rows). Shared by every format."""
    wd = stats["working_days"]
    backlog = stats["backlog"]
    summary = [
        ["Jumlah pengaduan", stats["total"]],
        ["Belum selesai (backlog)", backlog["open"]],
        ["Median umur backlog (hari kerja)", _num(backlog["median_age_working_days"])],
        ["Backlog lebih dari 5 hari kerja", backlog["over_5_working_days"]],
        ["Median waktu tanggapan pertama (hari kerja)", _num(wd["first_response"]["median"])],
        ["Persentil ke-90 waktu tanggapan pertama (hari kerja)",
         _num(wd["first_response"]["p90"])],
        ["Median waktu penyelesaian (hari kerja)", _num(wd["resolution"]["median"])],
        ["Persentil ke-90 waktu penyelesaian (hari kerja)", _num(wd["resolution"]["p90"])],
        ["Kepatuhan SLA", _pct(stats["sla"]["compliance"])],
        ["Dikembalikan unit", stats["returned"]],
        ["Diteruskan ulang", stats["rerouted"]],
        ["Dibuka kembali", stats["reopened"]],
        ["Penilaian diterima", stats["satisfaction"]["rated"]],
        ["Rata-rata kepuasan (1-5)", _num(stats["satisfaction"]["average"])],
    ]
    out = [("Ringkasan", ["Ukuran", "Nilai"], summary)]
    out.append(("Menurut status", ["Status", "Jumlah"],
                [[STATUSES.get(k, k), v] for k, v in stats["by_status"].items()]))
    if "sla_by_unit" in stats:
        out.append(("Kepatuhan SLA per unit",
                    ["Unit", "Jumlah pengaduan", "Tepat waktu", "Terlambat", "Kepatuhan SLA"],
                    [[unit if unit != "unrouted" else "Belum diteruskan", v["complaints"],
                      v["met"], v["missed"], _pct(v["compliance"])]
                     for unit, v in stats["sla_by_unit"].items()]))
    out.append(("Menurut kanal", ["Kanal", "Jumlah"],
                [[CHANNELS.get(k, k), v] for k, v in stats["by_channel"].items()]))
    out.append(("Menurut kategori", ["Kategori", "Jumlah"],
                [[_category(k), v] for k, v in stats["by_category"].items()]))
    out.append(("Menurut kecamatan", ["Kode kecamatan", "Jumlah"],
                [[k, v] for k, v in stats["by_kecamatan"].items()]))
    out.append(("Menurut kerahasiaan", ["Kerahasiaan", "Jumlah"],
                [[CONFIDENTIALITY.get(k, k), v] for k, v in stats["by_confidentiality"].items()]))
    out.append(("Penilaian kepuasan", ["Nilai", "Jumlah"],
                [[k, v] for k, v in stats["satisfaction"]["by_rating"].items()]))
    label = "Minggu mulai" if stats["trend"]["period"] == "week" else "Bulan"
    out.append(("Tren", [label, "Masuk", "Belum selesai", "Selesai"],
                [[k, v["received"], v["open"], v["done"]]
                 for k, v in stats["trend"]["buckets"].items()]))
    return out


def to_csv(stats: dict) -> bytes:
    """One CSV file: each table under a title row, separated by an empty row (Excel-friendly
    UTF-8 with BOM, semicolons as Indonesian Excel expects)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    for i, (title, headers, rows) in enumerate(tables(stats)):
        if i:
            writer.writerow([])
        writer.writerow([title])
        writer.writerow(headers)
        writer.writerows(rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(stats: dict) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, headers, rows in tables(stats):
        sheet = workbook.create_sheet(title[:31])
        sheet.append(headers)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append(row)
        for column, header in zip(sheet.columns, headers, strict=False):
            width = max([len(str(header))] + [len(str(c.value or "")) for c in column])
            sheet.column_dimensions[column[0].column_letter].width = min(60, width + 2)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def month_title(first: date) -> str:
    return f"{MONTHS[first.month - 1]} {first.year}"


def monthly_pdf(stats: dict, first: date, generated: date | None = None,
                scope: str = "Semua unit") -> bytes:
    """Laporan Bulanan Dumas: A4, summary, charts (channel mix, weekly trend), tables."""
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.charts.piecharts import Pie
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, title=f"Laporan Bulanan Dumas {month_title(first)}",
                            author="Kantor Kementerian Agama Kabupaten Kepahiang",
                            leftMargin=2 * cm, rightMargin=2 * cm, topMargin=2 * cm,
                            bottomMargin=2 * cm)
    story = [
        Paragraph("Laporan Bulanan Dumas", styles["Title"]),
        Paragraph("Layanan Pengaduan Masyarakat - Kantor Kementerian Agama Kabupaten Kepahiang",
                  styles["Normal"]),
        Paragraph(f"Periode: {month_title(first)} ({scope})", styles["Normal"]),
        Paragraph(f"Dibuat: {(generated or date.today()).isoformat()}", styles["Normal"]),
        Spacer(1, 0.5 * cm),
    ]

    def table(headers, rows):
        t = Table([headers] + [[str(c) for c in r] for r in rows], repeatRows=1)
        t.setStyle(TableStyle([
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#1f5f3f")),
            ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
            ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
            ("FONTSIZE", (0, 0), (-1, -1), 9),
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#eef5f0")]),
        ]))
        return t

    # Charts: channel mix (pie) and complaints per week (bars).
    channels = [(CHANNELS.get(k, k), v) for k, v in stats["by_channel"].items() if v]
    if channels:
        drawing = Drawing(16 * cm, 6 * cm)
        drawing.add(String(0, 5.5 * cm, "Sebaran kanal", fontName="Helvetica-Bold", fontSize=10))
        pie = Pie()
        pie.x, pie.y, pie.width, pie.height = 1 * cm, 0.3 * cm, 4.5 * cm, 4.5 * cm
        pie.data = [v for _, v in channels]
        pie.labels = [f"{k} ({v})" for k, v in channels]
        pie.sideLabels = True
        drawing.add(pie)
        story += [drawing, Spacer(1, 0.3 * cm)]
    trend = stats["trend"]["buckets"]
    if trend:
        drawing = Drawing(16 * cm, 6.5 * cm)
        drawing.add(String(0, 6 * cm, "Pengaduan masuk dan selesai per minggu",
                           fontName="Helvetica-Bold", fontSize=10))
        chart = VerticalBarChart()
        chart.x, chart.y, chart.width, chart.height = 1.2 * cm, 1 * cm, 14 * cm, 4.5 * cm
        chart.data = [[v["received"] for v in trend.values()],
                      [v["done"] for v in trend.values()]]
        chart.categoryAxis.categoryNames = [k[5:] for k in trend]
        chart.valueAxis.valueMin = 0
        chart.bars[0].fillColor = colors.HexColor("#1f5f3f")
        chart.bars[1].fillColor = colors.HexColor("#d9a400")
        drawing.add(chart)
        story += [drawing, Spacer(1, 0.3 * cm)]

    for title, headers, rows in tables(stats):
        if not rows:
            continue
        story += [Paragraph(title, styles["Heading2"]), table(headers, rows),
                  Spacer(1, 0.4 * cm)]
    doc.build(story)
    return out.getvalue()
