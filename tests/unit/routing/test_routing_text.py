"""Normalization, integritas language and place names in complaint text."""

import pytest

from services.routing.domain.text import (
    edit_distance,
    find_area_in_text,
    integrity_terms,
    mentions_integrity,
    normalize,
)


@pytest.mark.parametrize(
    "written",
    [
        "MTsN 2",
        "MTsN 02",
        "MTs N 2",
        "M.Ts.N 2",
        "MTsN2",
        "mts negeri 2",
        "MTs. Negeri 02",
        "Madrasah Tsanawiyah Negeri 2",
        "MTS N II",
        "Madrasah Tsanawiyah N 2",
        "Madrasah Tsanawiyyah Negri 02",
        "madrasa sanawiyah n 2",
    ],
)
def test_spellings_of_mtsn_2_normalize_to_the_same_words(written):
    assert normalize(written) == "mtsn 2"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("Madrasah Aliyah Negeri 1", "man 1"),
        ("Madrasah Aliya N I", "man 1"),
        ("Madrasah Ibtidaiyah Negeri 7", "min 7"),
        ("Madrasah Ibtida'iyah Negeri 07", "min 7"),
        ("Madrasah Ibtidaiyyah N VII", "min 7"),
    ],
)
def test_spelled_out_madrasah_aliyah_and_ibtidaiyah_negeri_normalize_like_man_and_min(
    written, expected
):
    assert normalize(written) == expected


def test_a_misspelt_madrasah_type_is_corrected_only_after_madrasah():
    assert normalize("ibu aliyah guru kelas 3") == "ibu aliyah guru kelas 3"


def test_roman_numerals_after_a_madrasah_type_become_arabic():
    assert normalize("MAN I") == normalize("MAN 1") == "man 1"
    assert normalize("MIN VII Kepahiang") == "min 7 kepahiang"


def test_a_lone_x_outside_a_madrasah_name_stays_a_letter():
    assert normalize("sudah 3 x datang") == "sudah 3 x datang"


def test_case_punctuation_and_extra_spaces_are_dropped():
    assert normalize("  Pelayanan   KUA!!!  lambat...  ") == "pelayanan kua lambat"


def test_whatsapp_shorthand_is_expanded():
    assert normalize("sy kmrn dtg, tp bpk yg jaga tdk ada dgn alasan") == (
        "saya kemarin dtg tapi bapak yang jaga tidak ada dengan alasan"
    )


def test_reduplication_is_folded_but_a_glued_madrasah_number_is_kept():
    assert normalize("pungutan2 liar") == "pungutan liar"
    assert normalize("pungutan-pungutan liar") == "pungutan liar"
    assert normalize("MAN2") == "man 2"


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("Ada pungli waktu daftar nikah", "pungli"),
        ("petugas melakukan pungutan liar", "pungutan liar"),
        ("pungutan2 liar di madrasah", "pungutan liar"),
        ("saya di suap supaya diam", "suap"),
        ("harus nyogok dulu baru diurus", "suap"),
        ("ini gratifikasi namanya", "gratifikasi"),
        ("dimintai uang pelicin", "uang pelicin"),
        ("katanya uang rokok buat bapak", "uang rokok"),
        ("petugas minta uang 500rb", "minta uang"),
        ("kami diminta sejumlah uang", "minta uang"),
        ("petugas minta duit", "minta uang"),
        ("ini pemerasan", "pemerasan"),
        ("lewat calo lebih cepat", "calo"),
    ],
)
def test_integritas_language_is_detected(text, term):
    assert term in integrity_terms(text)


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("suapnya sudah diterima petugas", ("suap",)),
        ("katanya punglinya wajib", ("pungli",)),
        ("calolah yang mengurus berkas", ("calo",)),
        ("apakah ini gratifikasikah", ("gratifikasi",)),
        ("pemerasannya terjadi dua kali, lalu uang pelicinnya diminta", ("pemerasan",
                                                                          "uang pelicin")),
        # the suffix is stripped only from a stem of more than three letters
        ("nyanya kahkah lahlah", ()),
    ],
)
def test_a_term_with_a_suffix_is_detected_as_the_term(text, terms):
    assert integrity_terms(text) == terms


@pytest.mark.parametrize(
    "text",
    [
        "Jadwal bimbingan calon pengantin tidak jelas",
        "Minta informasi syarat nikah",
        "Uang SPP madrasah naik, mohon penjelasan",
    ],
)
def test_ordinary_complaints_are_not_integritas(text):
    assert not mentions_integrity(text)


def test_edit_distance_counts_a_transposition_as_one_edit():
    assert edit_distance("kabawetan", "kebawetan", 2) == 1
    assert edit_distance("merigi", "mregii", 2) == 2
    assert edit_distance("kepahiang", "merigi", 2) == 3


@pytest.mark.parametrize("written", ["Kabawetan", "Kebawetan", "kebawatan", "KEC. KABAWETAN"])
def test_kabawetan_and_kebawetan_are_the_same_kecamatan(written):
    assert find_area_in_text(f"nikah di {written}") == ("17.08.06", None, "Kebawetan")


@pytest.mark.parametrize(
    "written", ["seberang musi", "sbrg musi", "Seberang Musy", "kec sbrg musi"]
)
def test_seberang_musi_is_found_in_its_spellings(written):
    assert find_area_in_text(written).kecamatan_code == "17.08.07"


def test_tebat_krai_is_tebat_karai():
    assert find_area_in_text("di tebat krai").kecamatan_code == "17.08.03"


def test_kecamatan_keyword_picks_the_kecamatan_over_a_same_named_kelurahan():
    assert find_area_in_text("kecamatan tebat karai") == ("17.08.03", None, "Tebat Karai")
    assert find_area_in_text("kelurahan tebat karai").desa_code == "17.08.03.1008"


@pytest.mark.parametrize(
    ("text", "desa_code"),
    [
        ("saya warga desa tangsi durn", "17.08.06.2007"),
        ("desa kelilk", "17.08.04.2001"),
        ("ds suka merindu", "17.08.04.2023"),
        ("desa pungguk meringan", "17.08.02.2020"),
        ("Daspetah II", "17.08.02.2024"),
        ("ujan mas atas", "17.08.02.1002"),
    ],
)
def test_typod_or_split_desa_names_map_to_their_desa(text, desa_code):
    area = find_area_in_text(text)
    assert area.desa_code == desa_code
    assert area.kecamatan_code == desa_code[:8]


def test_a_desa_is_preferred_over_a_kecamatan_named_elsewhere():
    assert find_area_in_text("kantor di merigi, rumah di desa kelilik").desa_code == (
        "17.08.04.2001"
    )


def test_a_kecamatan_named_after_kua_wins_over_the_complainants_village():
    area = find_area_in_text("nikah di KUA Merigi, saya tinggal di desa Kelilik")
    assert area == ("17.08.05", None, "Merigi")


def test_kepahiang_alone_means_the_regency_not_the_kecamatan():
    assert find_area_in_text("saya warga Kabupaten Kepahiang") is None
    assert find_area_in_text("pelayanan di Kepahiang lambat") is None
    assert find_area_in_text("KUA Kepahiang").kecamatan_code == "17.08.04"
    assert find_area_in_text("kec. kepahiang").kecamatan_code == "17.08.04"


def test_ordinary_words_near_a_village_name_are_not_places():
    assert find_area_in_text("antri tidak tertib") is None  # desa Tertik
    assert find_area_in_text("untuk guru pensiunan") is None  # kelurahan Pensiunan
    assert find_area_in_text("kelurahan pensiunan").desa_code == "17.08.04.1003"


def test_text_without_a_place_has_no_area():
    assert find_area_in_text("Pelayanan lambat sekali") is None
    assert find_area_in_text("") is None
