from services.cli import main


def test_dumas_posters_writes_a_printable_pdf_and_png_per_unit_and_location(tmp_path):
    assert main(["posters", "--unit", "kua-merigi=KUA Kecamatan Merigi",
                 "--location", "ptsp=Meja PTSP", "--out", str(tmp_path)]) == 0
    pdf = tmp_path / "poster-kua-merigi-ptsp.pdf"
    png = tmp_path / "poster-kua-merigi-ptsp.png"
    assert pdf.read_bytes().startswith(b"%PDF")
    assert png.read_bytes().startswith(b"\x89PNG")
