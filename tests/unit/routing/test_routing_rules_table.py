"""Routing over a table of realistic complaint texts (typos, WhatsApp style, no punctuation).

Each row: (category, kecamatan field, text, expected unit, expected rule). Decisions are made
against the seed registry with every unit `live`, so the table checks which unit the rules pick;
the stage handling (off/shadow -> desk) has its own tests in test_routing_rules.py and, for the
same texts, the last test below.
"""

import pytest

from services.routing.domain.registry import load_seed
from services.routing.domain.rules import ComplaintFacts, decide

DESK = "kankemenag-kepahiang"

# fmt: off
CASES: list[tuple[str, str | None, str, str, str]] = [
    # 1. integritas: category or language; never the unit named in the text.
    ("integritas", None, "Petugas minta uang pelicin buat urus surat", DESK, "integritas"),
    ("nikah_rujuk", "17.08.05", "pas daftar nikah di kua merigi sy dimintain duit 500rb gak ada kwitansi", DESK, "integritas"),  # noqa: E501
    ("pendidikan_madrasah", None, "ada pungli daftar ulang di MTsN 2 kepahiang tiap siswa 300 ribu", DESK, "integritas"),  # noqa: E501
    ("pendidikan_madrasah", None, "pungutan liar utk seragam di man 1 kph", DESK, "integritas"),
    ("lainnya", None, "pungutan2 tdk resmi di madrasah kami tolong ditindak", DESK, "integritas"),
    ("guru_tendik", None, "kepala madrasah minta jatah dr tunjangan sertifikasi guru", DESK, "integritas"),  # noqa: E501
    ("haji_umrah", None, "ada calo haji yg ngaku2 bisa percepat antrian", DESK, "integritas"),
    ("wakaf", "17.08.04", "Untuk sertifikat wakaf harus kasih uang rokok ke petugas", DESK, "integritas"),  # noqa: E501
    ("nikah_rujuk", None, "penghulu minta uang terima kasih diluar biaya resmi", DESK, "integritas"),  # noqa: E501
    ("pelayanan_ptsp", None, "katanya biar cepet harus nyogok dulu ke orang dalam", DESK, "integritas"),  # noqa: E501
    ("lainnya", None, "dugaan gratifikasi pejabat kankemenag dari rekanan", DESK, "integritas"),
    ("pendidikan_madrasah", None, "Dana BOS di MIN 7 dikorupsi kepala sekolah", DESK, "integritas"),  # noqa: E501
    ("zakat_infak", "17.08.05", "penyaluran zakat dipotong petugas, kami diperas", DESK, "integritas"),  # noqa: E501
    ("integritas", None, "sy mau lapor ttg suap di kantor", DESK, "integritas"),
    # 3. a madrasah named in the text (any way of writing it).
    ("pendidikan_madrasah", None, "MTsN 2 Kepahiang ijazah anak sy blm keluar", "mtsn-2-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "ijazah di mts negeri 02 kepahiang lama bgt", "mtsn-2-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "M.Ts.N 2 kph guru sering tdk masuk kelas", "mtsn-2-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "anak sy di mtsn2 dibully teman sekelasnya", "mtsn-2-kepahiang", "madrasah_named"),  # noqa: E501
    ("lainnya", None, "Madrasah Tsanawiyah Negeri 2 Kepahiang wc nya rusak", "mtsn-2-kepahiang", "madrasah_named"),  # noqa: E501
    ("guru_tendik", None, "tunjangan guru honorer MTs N II blm cair 3 bln", "mtsn-2-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "MAN 1 kepahiang PPDB nya membingungkan", "man-1-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "man I kpg atap kelas bocor kalo hujan", "man-1-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "Madrasah Aliyah Negeri 1 Kepahiang legalisir ijazah", "man-1-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "ma negeri 01 kepahiang kantinnya kotor", "man-1-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "MAN 2 kph bus sekolah tdk jalan", "man-2-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "min 7 kepahiang guru kelas 3 jarang hadir", "min-7-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "MI Negeri 7 Kepahiang pagar sekolah roboh", "min-7-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "Madrasah Ibtidaiyah Negeri 1 Kepahiang kurang guru", "min-1-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "MIN1 kepahiang rapor blm dibagi", "min-1-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "mtsn 1 kph lapangan upacara becek", "mtsn-1-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "MTs Negeri 1 Kepahiang seragam mahal", "mtsn-1-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "MAS Al-Munawwaroh 2 tdk ada guru bahasa arab", "mas-al-munawwaroh-2", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "ma al munawaroh 2 bermani ilir asrama penuh", "mas-al-munawwaroh-2", "madrasah_named"),  # noqa: E501
    ("lainnya", None, "di depan MAN 1 banyak sampah berserakan", "man-1-kepahiang", "madrasah_named"),  # noqa: E501
    ("kemasjidan", "17.08.05", "masjid dekat MTsN 2 speaker kekencangan", "mtsn-2-kepahiang", "madrasah_named"),  # noqa: E501
    # Spelled out in full, with "N" for Negeri, and as people misspell it.
    ("pendidikan_madrasah", None, "Madrasah Tsanawiyah N 2 ijazah anak sy blm keluar", "mtsn-2-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "Madrasah Aliyah Negeri 1 gurunya sering telat masuk", "man-1-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "Madrasah Ibtidaiyah Negeri 7 pagar sekolah roboh", "min-7-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "madrasah tsanawiyyah negri 02 kph kantin kotor", "mtsn-2-kepahiang", "madrasah_named"),  # noqa: E501
    ("pendidikan_madrasah", None, "Madrasah Ibtida'iyah Negeri 7 Kepahiang buku paket blm dibagi", "min-7-kepahiang", "madrasah_named"),  # noqa: E501
    ("lainnya", None, "madrasa aliah n 1 parkiran sempit", "man-1-kepahiang", "madrasah_named"),  # noqa: E501
    # 4. KUA business: the kecamatan field, else a desa/kecamatan named in the text.
    ("nikah_rujuk", "17.08.05", "Pendaftaran nikah sdh 2 minggu blm diproses", "kua-merigi", "kua_kecamatan"),  # noqa: E501
    ("nikah_rujuk", "17.08.04", "buku nikah sy hilang mau urus duplikat lama", "kua-kepahiang", "kua_kecamatan"),  # noqa: E501
    ("wakaf", "17.08.01", "ikrar wakaf tanah masjid blm dicatat", "kua-bermani-ilir", "kua_kecamatan"),  # noqa: E501
    ("zakat_infak", "17.08.06", "zakat fitrah tdk merata pembagiannya", "kua-kebawetan", "kua_kecamatan"),  # noqa: E501
    ("kemasjidan", "17.08.07", "arah kiblat masjid perlu diukur ulang", "kua-seberang-musi", "kua_kecamatan"),  # noqa: E501
    ("nikah_rujuk", "17.08.08", "rujuk tdk bisa diproses katanya petugas cuti", "kua-muara-kemumu", "kua_kecamatan"),  # noqa: E501
    ("nikah_rujuk", None, "sy dr desa pulo geto mau nikah tp penghulu susah dihubungi", "kua-merigi", "kua_kecamatan"),  # noqa: E501
    ("nikah_rujuk", None, "daftar nikah di KUA Merigi antrinya lama bgt", "kua-merigi", "kua_kecamatan"),  # noqa: E501
    ("nikah_rujuk", None, "kua kec tebat karai tutup jam 12 siang", "kua-tebat-karai", "kua_kecamatan"),  # noqa: E501
    ("nikah_rujuk", None, "warga ds taba santing mau nikah bln depan blm ada kabar", "kua-tebat-karai", "kua_kecamatan"),  # noqa: E501
    ("wakaf", None, "tanah wakaf di desa sukasari disengketakan ahli waris", "kua-kebawetan", "kua_kecamatan"),  # noqa: E501
    ("wakaf", None, "sertifikat wakaf di kelurahan pasar ujung blm selesai", "kua-kepahiang", "kua_kecamatan"),  # noqa: E501
    ("zakat_infak", None, "zakat di kec ujan mas tdk transparan", "kua-ujan-mas", "kua_kecamatan"),  # noqa: E501
    ("kemasjidan", None, "masjid di desa batu kalung tdk pernah dibina", "kua-muara-kemumu", "kua_kecamatan"),  # noqa: E501
    ("nikah_rujuk", None, "kua kabawetan nikah di rumah biayanya tdk jelas infonya", "kua-kebawetan", "kua_kecamatan"),  # noqa: E501
    ("nikah_rujuk", None, "KUA Kebawetan penghulunya telat datang akad", "kua-kebawetan", "kua_kecamatan"),  # noqa: E501
    ("nikah_rujuk", None, "nikah di kua seberang musi diminta fotokopi berkali kali", "kua-seberang-musi", "kua_kecamatan"),  # noqa: E501
    ("nikah_rujuk", None, "kua sbrg musi susah dihubungi", "kua-seberang-musi", "kua_kecamatan"),  # noqa: E501
    ("nikah_rujuk", None, "sy warga desa talang babatan mau rujuk", "kua-seberang-musi", "kua_kecamatan"),  # noqa: E501
    ("kemasjidan", None, "data musala di kec bermani ilir blm diupdate", "kua-bermani-ilir", "kua_kecamatan"),  # noqa: E501
    ("nikah_rujuk", None, "daftar nikah di kua merigy lama", "kua-merigi", "kua_kecamatan"),  # noqa: E501
    ("nikah_rujuk", None, "calon pengantin dr desa tebat monok blm dapat jadwal bimwin", "kua-kepahiang", "kua_kecamatan"),  # noqa: E501
    ("nikah_rujuk", None, "Kec. Muara Kemumu penghulu cuma satu", "kua-muara-kemumu", "kua_kecamatan"),  # noqa: E501
    # KUA business without a place: desk triage.
    ("nikah_rujuk", None, "Buku nikah salah tulis nama ayah", DESK, "desk_triage"),
    ("zakat_infak", None, "laporan zakat tdk pernah diumumkan", DESK, "desk_triage"),
    # 5. education without a madrasah: the desk's education section.
    ("pendidikan_madrasah", None, "PIP anak sy blm cair padahal sdh terdaftar", DESK, "pendidikan_desk"),  # noqa: E501
    ("guru_tendik", None, "Tunjangan profesi guru madrasah telat 3 bulan", DESK, "pendidikan_desk"),  # noqa: E501
    ("pendidikan_madrasah", None, "madrasah swasta di desa kami kekurangan guru", DESK, "pendidikan_desk"),  # noqa: E501
    ("pendidikan_madrasah", None, "SMPN 1 kepahiang tdk terima anak sy", DESK, "pendidikan_desk"),  # noqa: E501
    # 6. everything else: desk triage.
    ("pelayanan_ptsp", None, "Antrian di PTSP Kemenag lama sekali", DESK, "desk_triage"),
    ("haji_umrah", None, "jadwal manasik haji blm diumumkan", DESK, "desk_triage"),
    ("lainnya", None, "website kemenag kepahiang tdk bisa dibuka", DESK, "desk_triage"),
    ("lainnya", None, "pelayanan di desa tebat monok kurang ramah", DESK, "desk_triage"),
    ("haji_umrah", None, "travel umrah di kepahiang tdk berangkatkan jamaah", DESK, "desk_triage"),
    ("lainnya", None, "tolong info jam buka kantor", DESK, "desk_triage"),
]
# fmt: on


@pytest.fixture(scope="module")
def all_live():
    registry = load_seed()
    for unit in list(registry.units()):
        registry = registry.with_stage(unit.code, "live")
    return registry


def facts(category, kecamatan, text, **extra):
    return ComplaintFacts(
        complaint_id="3f1c1d5e-8a0b-4f8e-9a43-1b2c3d4e5f60",
        category=category, description=text, kecamatan_code=kecamatan, **extra,
    )


def test_the_table_is_big_enough_and_covers_every_rule():
    assert len(CASES) >= 60
    assert {rule for *_, rule in CASES} == {
        "integritas", "madrasah_named", "kua_kecamatan", "pendidikan_desk", "desk_triage",
    }


@pytest.mark.parametrize(
    ("category", "kecamatan", "text", "unit", "rule"), CASES, ids=[c[2][:40] for c in CASES]
)
def test_a_complaint_text_reaches_the_expected_unit_by_the_expected_rule(
    all_live, category, kecamatan, text, unit, rule
):
    decision = decide(facts(category, kecamatan, text), all_live)
    assert (decision.unit_code, decision.rule) == (unit, rule), decision.reason
    assert decision.reason  # always a human-readable reason


@pytest.mark.parametrize(("text", "unit"), [
    ("anak sy di mtsn 2 kph ijazahnya ditahan", "mtsn-2-kepahiang"),
    ("warga desa pulo geto mau nikah", "kua-merigi"),
])
def test_a_trusted_qr_target_beats_what_the_text_names(all_live, text, unit):
    decision = decide(
        facts("lainnya", None, text, unit_hint="man-1-kepahiang", unit_hint_trusted=True),
        all_live,
    )
    assert (decision.unit_code, decision.rule) == ("man-1-kepahiang", "explicit_target")


def test_with_todays_stages_units_that_are_not_accepting_never_receive_complaints():
    seed = load_seed()
    for category, kecamatan, text, unit, rule in CASES:
        decision = decide(facts(category, kecamatan, text), seed)
        target = seed[unit]
        if target.accepting:
            assert (decision.unit_code, decision.rule) == (unit, rule)
        else:
            assert decision.unit_code == DESK
            expected = rule if target.type == "desk" else (
                f"{rule}_shadow" if target.stage == "shadow" else f"{rule}_off"
            )
            assert decision.rule == expected
