"""Catalogues shared by every service: categories, channels, confidentiality, statuses.

Names shown to people are in Bahasa Indonesia; codes are stable identifiers on the wire.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    description: str
    kua_business: bool = False
    education: bool = False


CATEGORIES: tuple[Category, ...] = (
    Category(
        "nikah_rujuk",
        "Nikah dan Rujuk",
        "Pendaftaran, pencatatan, atau pelayanan nikah dan rujuk di KUA.",
        kua_business=True,
    ),
    Category(
        "wakaf",
        "Wakaf",
        "Ikrar wakaf, sertifikat tanah wakaf, dan pengelolaan harta wakaf.",
        kua_business=True,
    ),
    Category(
        "zakat_infak",
        "Zakat, Infak, dan Sedekah",
        "Penyaluran atau pengelolaan zakat, infak, dan sedekah.",
        kua_business=True,
    ),
    Category(
        "kemasjidan",
        "Kemasjidan",
        "Pembinaan masjid, arah kiblat, dan data masjid atau musala.",
        kua_business=True,
    ),
    Category(
        "haji_umrah",
        "Haji dan Umrah",
        "Pendaftaran haji, pelunasan, manasik, dan penyelenggara umrah.",
    ),
    Category(
        "pendidikan_madrasah",
        "Pendidikan Madrasah",
        "Pelayanan di MI, MTs, MA: penerimaan siswa, ijazah, bantuan, sarana.",
        education=True,
    ),
    Category(
        "guru_tendik",
        "Guru dan Tenaga Kependidikan",
        "Sertifikasi, tunjangan, atau pelayanan untuk guru dan tenaga kependidikan.",
        education=True,
    ),
    Category(
        "pelayanan_ptsp",
        "Pelayanan PTSP",
        "Pelayanan Terpadu Satu Pintu di Kantor Kementerian Agama Kepahiang.",
    ),
    Category(
        "integritas",
        "Integritas dan Pungutan Liar",
        "Pungutan liar, suap, gratifikasi, atau penyalahgunaan wewenang oleh petugas.",
    ),
    Category("lainnya", "Lainnya", "Hal lain yang tidak termasuk kategori di atas."),
)

CATEGORY_BY_CODE: dict[str, Category] = {c.code: c for c in CATEGORIES}
CATEGORY_CODES: tuple[str, ...] = tuple(c.code for c in CATEGORIES)

# How a complaint reached Dumas.
CHANNELS: dict[str, str] = {
    "web": "Formulir web",
    "qr": "Poster QR",
    "ptsp": "Meja PTSP",
    "whatsapp": "WhatsApp",
    "rumah_digital": "Rumah Digital",
    "website": "Situs web",
    "open311": "Open311",
    "amqp": "Integrasi kanal",
}

# public: may be published; anonymous: no personal data kept at all;
# confidential: identity protected, contents not published.
CONFIDENTIALITY: dict[str, str] = {
    "public": "Publik",
    "anonymous": "Anonim",
    "confidential": "Rahasia",
}

STATUSES: dict[str, str] = {
    "received": "Diterima",
    "routed": "Diteruskan ke unit",
    "acknowledged": "Diterima unit",
    "in_progress": "Sedang ditangani",
    "info_requested": "Menunggu informasi tambahan",
    "responded": "Sudah dijawab",
    "resolved": "Selesai",
    "closed": "Ditutup",
}

CONTACT_KINDS: tuple[str, ...] = ("email", "phone", "whatsapp")
