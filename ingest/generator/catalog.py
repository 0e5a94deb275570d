"""Reference tables the generator draws from: places, merchant categories, names, devices, IPs.

Everything here is fixed data (no randomness, no I/O). The simulation picks from these tables
with its own seeded generator, so changing a table changes the data set but never its
determinism.

>>> CITIES[0].name, CITIES[0].country, COUNTRY_CURRENCY["GB"]
('London', 'GB', 'GBP')
>>> [m.code for m in MCCS if m.online][:3]
['5999', '5818', '4899']
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class City:
    """A place people live in or travel to.

    Args:
        name: the city's name as written in addresses.
        country: ISO 3166-1 alpha-2 code.
        lat: latitude in degrees.
        lon: longitude in degrees.
        tz: IANA time zone name.
        postcode: a postcode template: ``#`` becomes a digit, ``A`` a capital letter.
        weight: relative share of the country's customers living there.
    """

    name: str
    country: str
    lat: float
    lon: float
    tz: str
    postcode: str = "#####"
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Mcc:
    """A merchant category the simulation spends in.

    Args:
        code: ISO 18245 merchant category code.
        label: short name used in merchant names.
        online: paid card-not-present through a gateway (else in person, card present).
        mu: mean of log(amount in EUR) for an average spender.
        sigma: standard deviation of log(amount).
        hours: name of the local hour-of-day profile (see ``HOUR_PROFILES``).
    """

    code: str
    label: str
    online: bool
    mu: float
    sigma: float
    hours: str


HOME_COUNTRIES: Final = ("GB", "DE", "FR", "NL", "ES", "US")
HOME_WEIGHTS: Final = (0.30, 0.20, 0.15, 0.10, 0.10, 0.15)

COUNTRY_CURRENCY: Final = {
    "GB": "GBP",
    "DE": "EUR",
    "FR": "EUR",
    "NL": "EUR",
    "ES": "EUR",
    "US": "USD",
    "IT": "EUR",
    "PT": "EUR",
    "JP": "JPY",
    "TH": "THB",
    "AE": "AED",
    "NG": "NGN",
    "BR": "BRL",
    "VN": "VND",
    "ID": "IDR",
    "RO": "RON",
    "MY": "MYR",
    "PH": "PHP",
}
"""Local currency of every country the simulation touches."""

FX_PER_EUR: Final = {
    "EUR": 1.0,
    "GBP": 0.86,
    "USD": 1.08,
    "JPY": 162.0,
    "THB": 38.0,
    "AED": 3.97,
    "NGN": 1700.0,
    "BRL": 5.9,
    "VND": 27000.0,
    "IDR": 17000.0,
    "RON": 4.97,
    "MYR": 5.0,
    "PHP": 61.0,
}
"""Units of each currency per euro (rough, fixed: amounts only need plausible magnitudes)."""

CITIES: Final = (
    City("London", "GB", 51.5072, -0.1276, "Europe/London", "SE# #AA", 4.0),
    City("Manchester", "GB", 53.4808, -2.2426, "Europe/London", "M## #AA", 1.2),
    City("Birmingham", "GB", 52.4862, -1.8904, "Europe/London", "B## #AA", 1.2),
    City("Leeds", "GB", 53.8008, -1.5491, "Europe/London", "LS# #AA", 0.8),
    City("Glasgow", "GB", 55.8642, -4.2518, "Europe/London", "G## #AA", 0.8),
    City("Bristol", "GB", 51.4545, -2.5879, "Europe/London", "BS# #AA", 0.6),
    City("Berlin", "DE", 52.5200, 13.4050, "Europe/Berlin", "10###", 2.0),
    City("Hamburg", "DE", 53.5511, 9.9937, "Europe/Berlin", "20###", 1.2),
    City("München", "DE", 48.1351, 11.5820, "Europe/Berlin", "80###", 1.1),
    City("Köln", "DE", 50.9375, 6.9603, "Europe/Berlin", "50###", 0.8),
    City("Frankfurt am Main", "DE", 50.1109, 8.6821, "Europe/Berlin", "60###", 0.6),
    City("Paris", "FR", 48.8566, 2.3522, "Europe/Paris", "750##", 3.0),
    City("Lyon", "FR", 45.7640, 4.8357, "Europe/Paris", "6900#", 1.0),
    City("Marseille", "FR", 43.2965, 5.3698, "Europe/Paris", "130##", 0.9),
    City("Toulouse", "FR", 43.6047, 1.4442, "Europe/Paris", "310##", 0.6),
    City("Lille", "FR", 50.6292, 3.0573, "Europe/Paris", "590##", 0.5),
    City("Amsterdam", "NL", 52.3676, 4.9041, "Europe/Amsterdam", "10## AA", 2.0),
    City("Rotterdam", "NL", 51.9244, 4.4777, "Europe/Amsterdam", "30## AA", 1.2),
    City("Utrecht", "NL", 52.0907, 5.1214, "Europe/Amsterdam", "35## AA", 0.8),
    City("Den Haag", "NL", 52.0705, 4.3007, "Europe/Amsterdam", "25## AA", 0.8),
    City("Madrid", "ES", 40.4168, -3.7038, "Europe/Madrid", "280##", 2.0),
    City("Barcelona", "ES", 41.3874, 2.1686, "Europe/Madrid", "080##", 1.8),
    City("Valencia", "ES", 39.4699, -0.3763, "Europe/Madrid", "460##", 0.8),
    City("Sevilla", "ES", 37.3891, -5.9845, "Europe/Madrid", "410##", 0.7),
    City("New York", "US", 40.7128, -74.0060, "America/New_York", "NY 100##", 2.5),
    City("Chicago", "US", 41.8781, -87.6298, "America/Chicago", "IL 606##", 1.3),
    City("Los Angeles", "US", 34.0522, -118.2437, "America/Los_Angeles", "CA 900##", 1.6),
    City("Houston", "US", 29.7604, -95.3698, "America/Chicago", "TX 770##", 1.0),
    City("Boston", "US", 42.3601, -71.0589, "America/New_York", "MA 021##", 0.7),
)
"""Home cities, by country."""

TRAVEL_CITIES: Final = (
    City("Roma", "IT", 41.9028, 12.4964, "Europe/Rome", "001##", 2.0),
    City("Lisboa", "PT", 38.7223, -9.1393, "Europe/Lisbon", "1###-###", 1.5),
    City("Barcelona", "ES", 41.3874, 2.1686, "Europe/Madrid", "080##", 2.0),
    City("Paris", "FR", 48.8566, 2.3522, "Europe/Paris", "750##", 2.0),
    City("New York", "US", 40.7128, -74.0060, "America/New_York", "NY 100##", 1.5),
    City("Tokyo", "JP", 35.6762, 139.6503, "Asia/Tokyo", "1##-####", 0.7),
    City("Bangkok", "TH", 13.7563, 100.5018, "Asia/Bangkok", "10###", 0.7),
    City("Dubai", "AE", 25.2048, 55.2708, "Asia/Dubai", "#####", 0.6),
)
"""Where honest customers go on holiday or business trips."""

FRAUD_CITIES: Final = (
    City("Lagos", "NG", 6.5244, 3.3792, "Africa/Lagos"),
    City("São Paulo", "BR", -23.5505, -46.6333, "America/Sao_Paulo"),
    City("Ho Chi Minh City", "VN", 10.8231, 106.6297, "Asia/Ho_Chi_Minh"),
    City("Jakarta", "ID", -6.2088, 106.8456, "Asia/Jakarta"),
    City("Bucureşti", "RO", 44.4268, 26.1025, "Europe/Bucharest"),
    City("Kuala Lumpur", "MY", 3.1390, 101.6869, "Asia/Kuala_Lumpur"),
    City("Manila", "PH", 14.5995, 120.9842, "Asia/Manila"),
)
"""Far-away places where cloned cards are cashed out and takeovers are run from."""

MCCS: Final = (
    Mcc("5411", "Grocery", False, 3.25, 0.70, "day"),
    Mcc("5499", "Corner Shop", False, 2.10, 0.60, "late"),
    Mcc("5541", "Fuel", False, 3.80, 0.35, "commute"),
    Mcc("5812", "Restaurant", False, 3.40, 0.55, "meals"),
    Mcc("5814", "Fast Food", False, 2.30, 0.45, "meals"),
    Mcc("5912", "Pharmacy", False, 2.70, 0.60, "day"),
    Mcc("5311", "Department Store", False, 3.80, 0.80, "shopping"),
    Mcc("5651", "Clothing", False, 4.00, 0.70, "shopping"),
    Mcc("4111", "Transit", False, 1.10, 0.50, "commute"),
    Mcc("5732", "Electronics", False, 4.80, 0.90, "shopping"),
    Mcc("5999", "Online Store", True, 3.60, 0.90, "evening"),
    Mcc("5818", "Digital Goods", True, 2.00, 0.70, "evening"),
    Mcc("4899", "Streaming", True, 2.60, 0.25, "flat"),
    Mcc("4121", "Rides", True, 2.80, 0.50, "commute"),
    Mcc("4511", "Airline", True, 5.40, 0.60, "evening"),
    Mcc("7011", "Hotel", True, 5.00, 0.60, "evening"),
)
"""Spending categories (index order is used by the archetype weight tables)."""

MCC_INDEX: Final = {m.code: i for i, m in enumerate(MCCS)}

ARCHETYPES: Final = {
    "commuter": {
        "5411": 20,
        "5499": 8,
        "5541": 12,
        "5812": 8,
        "5814": 12,
        "5912": 3,
        "5311": 3,
        "5651": 3,
        "4111": 14,
        "5732": 1,
        "5999": 8,
        "5818": 4,
        "4899": 1,
        "4121": 3,
    },
    "family": {
        "5411": 32,
        "5499": 5,
        "5541": 12,
        "5812": 6,
        "5814": 8,
        "5912": 6,
        "5311": 7,
        "5651": 6,
        "4111": 3,
        "5732": 1,
        "5999": 10,
        "5818": 2,
        "4899": 1,
        "4121": 1,
    },
    "student": {
        "5411": 18,
        "5499": 14,
        "5812": 6,
        "5814": 18,
        "5912": 2,
        "5651": 4,
        "4111": 10,
        "5999": 10,
        "5818": 12,
        "4899": 2,
        "4121": 4,
    },
    "online": {
        "5411": 16,
        "5499": 5,
        "5541": 5,
        "5812": 6,
        "5814": 8,
        "5912": 3,
        "5651": 2,
        "4111": 4,
        "5732": 1,
        "5999": 26,
        "5818": 14,
        "4899": 2,
        "4121": 6,
        "4511": 1,
        "7011": 1,
    },
    "retired": {
        "5411": 38,
        "5499": 6,
        "5541": 8,
        "5812": 10,
        "5912": 12,
        "5311": 10,
        "5651": 4,
        "4111": 4,
        "5999": 6,
        "4899": 1,
        "7011": 1,
    },
    "corporate": {
        "5812": 30,
        "5814": 8,
        "5541": 16,
        "4121": 18,
        "4511": 6,
        "7011": 10,
        "5999": 6,
        "4111": 6,
    },
}
"""Relative spending frequency per MCC for each kind of customer."""

ARCHETYPE_SHARES: Final = {
    "commuter": 0.30,
    "family": 0.28,
    "student": 0.12,
    "online": 0.18,
    "retired": 0.12,
}
"""How common each personal archetype is (``corporate`` is assigned separately)."""

_H = {
    "day": [0, 0, 0, 0, 0, 0, 1, 3, 5, 7, 9, 10, 11, 10, 9, 9, 10, 11, 11, 9, 6, 3, 1, 0],
    "late": [1, 1, 0, 0, 0, 0, 1, 4, 6, 6, 6, 7, 8, 7, 6, 6, 7, 8, 9, 9, 8, 7, 5, 2],
    "commute": [0, 0, 0, 0, 0, 1, 4, 12, 12, 6, 4, 4, 4, 4, 4, 5, 8, 12, 11, 6, 3, 2, 1, 0],
    "meals": [1, 0, 0, 0, 0, 0, 1, 3, 4, 2, 3, 8, 14, 12, 4, 3, 3, 5, 9, 13, 12, 7, 3, 1],
    "shopping": [0, 0, 0, 0, 0, 0, 0, 1, 2, 5, 9, 11, 12, 12, 12, 12, 12, 11, 9, 6, 3, 1, 0, 0],
    "evening": [3, 2, 1, 0, 0, 0, 1, 2, 3, 4, 4, 5, 6, 5, 5, 5, 5, 6, 7, 9, 11, 11, 9, 6],
    "flat": [1, 1, 1, 1, 1, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 2],
}
HOUR_PROFILES: Final = {k: tuple(float(x) for x in v) for k, v in _H.items()}
"""Relative frequency of each local hour (0-23) per profile."""

FIRST_NAMES: Final = {
    "GB": (
        "Oliver",
        "Amelia",
        "George",
        "Isla",
        "Harry",
        "Ava",
        "Noah",
        "Mia",
        "Jack",
        "Sophia",
        "Leo",
        "Grace",
        "Arthur",
        "Lily",
        "Oscar",
        "Freya",
        "James",
        "Emily",
        "William",
        "Chloe",
        "Priya",
        "Mohammed",
        "Aisha",
        "Daniel",
    ),
    "DE": (
        "Lukas",
        "Leon",
        "Finn",
        "Paul",
        "Jonas",
        "Emma",
        "Mia",
        "Hannah",
        "Sophia",
        "Lina",
        "Marie",
        "Felix",
        "Anna",
        "Lea",
        "Max",
        "Julia",
        "Tim",
        "Laura",
        "Mehmet",
        "Elif",
    ),
    "FR": (
        "Gabriel",
        "Louis",
        "Raphaël",
        "Jules",
        "Adam",
        "Léa",
        "Louise",
        "Emma",
        "Jade",
        "Alice",
        "Chloé",
        "Hugo",
        "Camille",
        "Manon",
        "Lucas",
        "Inès",
        "Yanis",
        "Sarah",
    ),
    "NL": (
        "Daan",
        "Sem",
        "Lucas",
        "Levi",
        "Finn",
        "Emma",
        "Julia",
        "Mila",
        "Tess",
        "Sophie",
        "Noah",
        "Sanne",
        "Lotte",
        "Bram",
        "Ruben",
        "Fleur",
        "Jesse",
        "Anouk",
    ),
    "ES": (
        "Hugo",
        "Martín",
        "Lucas",
        "Mateo",
        "Leo",
        "Lucía",
        "Sofía",
        "Martina",
        "María",
        "Julia",
        "Paula",
        "Daniel",
        "Alejandro",
        "Carmen",
        "Pablo",
        "Javier",
        "Elena",
    ),
    "US": (
        "Liam",
        "Olivia",
        "Noah",
        "Emma",
        "James",
        "Charlotte",
        "Elijah",
        "Ava",
        "Mason",
        "Sophia",
        "Ethan",
        "Isabella",
        "Michael",
        "Mia",
        "Jose",
        "Camila",
        "Jayden",
        "Harper",
        "Tyler",
        "Madison",
        "DeShawn",
        "Mei",
    ),
}

LAST_NAMES: Final = {
    "GB": (
        "Smith",
        "Jones",
        "Taylor",
        "Brown",
        "Williams",
        "Wilson",
        "Johnson",
        "Davies",
        "Patel",
        "Robinson",
        "Wright",
        "Thompson",
        "Evans",
        "Walker",
        "White",
        "Roberts",
        "Green",
        "Hall",
        "Wood",
        "Jackson",
        "Clarke",
        "Khan",
        "O'Brien",
        "Campbell",
    ),
    "DE": (
        "Müller",
        "Schmidt",
        "Schneider",
        "Fischer",
        "Weber",
        "Meyer",
        "Wagner",
        "Becker",
        "Schulz",
        "Hoffmann",
        "Koch",
        "Richter",
        "Klein",
        "Wolf",
        "Schröder",
        "Yılmaz",
        "Neumann",
        "Braun",
    ),
    "FR": (
        "Martin",
        "Bernard",
        "Dubois",
        "Thomas",
        "Robert",
        "Richard",
        "Petit",
        "Durand",
        "Leroy",
        "Moreau",
        "Simon",
        "Laurent",
        "Lefèvre",
        "Michel",
        "Garcia",
        "Benali",
        "Fournier",
        "Girard",
    ),
    "NL": (
        "de Jong",
        "Jansen",
        "de Vries",
        "van den Berg",
        "van Dijk",
        "Bakker",
        "Janssen",
        "Visser",
        "Smit",
        "Meijer",
        "de Boer",
        "Mulder",
        "de Groot",
        "Bos",
        "Vos",
        "Peters",
        "Hendriks",
    ),
    "ES": (
        "García",
        "Rodríguez",
        "González",
        "Fernández",
        "López",
        "Martínez",
        "Sánchez",
        "Pérez",
        "Gómez",
        "Martín",
        "Jiménez",
        "Ruiz",
        "Hernández",
        "Díaz",
        "Moreno",
        "Navarro",
        "Romero",
    ),
    "US": (
        "Smith",
        "Johnson",
        "Williams",
        "Brown",
        "Jones",
        "Garcia",
        "Miller",
        "Davis",
        "Rodriguez",
        "Martinez",
        "Hernandez",
        "Lopez",
        "Wilson",
        "Anderson",
        "Thomas",
        "Nguyen",
        "Kim",
        "Jackson",
        "Lee",
        "Washington",
    ),
}

STREETS: Final = {
    "GB": (
        "High Street",
        "Station Road",
        "Church Lane",
        "Victoria Road",
        "Park Avenue",
        "Mill Lane",
        "Queens Road",
        "King Street",
        "Green Lane",
        "Manor Road",
    ),
    "DE": (
        "Hauptstraße",
        "Schulstraße",
        "Gartenstraße",
        "Bahnhofstraße",
        "Dorfstraße",
        "Bergstraße",
        "Lindenstraße",
        "Kirchweg",
        "Am Markt",
        "Birkenweg",
    ),
    "FR": (
        "rue de la République",
        "rue Victor Hugo",
        "avenue Jean Jaurès",
        "rue Pasteur",
        "rue de la Paix",
        "boulevard Voltaire",
        "rue des Lilas",
        "allée des Tilleuls",
    ),
    "NL": (
        "Kerkstraat",
        "Dorpsstraat",
        "Schoolstraat",
        "Molenweg",
        "Stationsweg",
        "Julianastraat",
        "Beatrixlaan",
        "Prinsengracht",
    ),
    "ES": (
        "Calle Mayor",
        "Calle Real",
        "Avenida de la Constitución",
        "Calle San José",
        "Plaza de España",
        "Calle del Sol",
        "Calle de la Iglesia",
        "Paseo de Gracia",
    ),
    "US": (
        "Main Street",
        "Oak Street",
        "Maple Avenue",
        "Park Avenue",
        "Washington Street",
        "Elm Street",
        "2nd Street",
        "Lake Drive",
        "Cedar Lane",
        "Sunset Boulevard",
    ),
}

EMAIL_DOMAINS: Final = {
    "GB": ("gmail.com", "outlook.com", "btinternet.com", "yahoo.co.uk", "icloud.com"),
    "DE": ("gmail.com", "web.de", "gmx.de", "t-online.de", "outlook.de"),
    "FR": ("gmail.com", "orange.fr", "free.fr", "laposte.net", "hotmail.fr"),
    "NL": ("gmail.com", "ziggo.nl", "kpnmail.nl", "hotmail.nl", "outlook.com"),
    "ES": ("gmail.com", "hotmail.es", "yahoo.es", "telefonica.net", "outlook.es"),
    "US": ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "aol.com", "comcast.net"),
}

THROWAWAY_DOMAINS: Final = (
    "protonmail.com",
    "mail.com",
    "gmx.com",
    "tutanota.com",
    "yandex.com",
    "mailbox.org",
)

PHONE_FORMATS: Final = {
    "GB": ("+447", 9),
    "DE": ("+4915", 9),
    "FR": ("+336", 8),
    "NL": ("+316", 8),
    "ES": ("+346", 8),
    "US": ("+1", 10),
    "NG": ("+23480", 8),
    "BR": ("+55119", 8),
    "VN": ("+8490", 7),
    "ID": ("+62812", 8),
    "RO": ("+4072", 7),
    "MY": ("+6012", 7),
    "PH": ("+63917", 7),
}
"""E.164 prefix and number of random digits after it, per country."""

LANGUAGES: Final = {
    "GB": "en-GB",
    "DE": "de-DE",
    "FR": "fr-FR",
    "NL": "nl-NL",
    "ES": "es-ES",
    "US": "en-US",
    "NG": "en-NG",
    "BR": "pt-BR",
    "VN": "vi-VN",
    "ID": "id-ID",
    "RO": "ro-RO",
    "MY": "ms-MY",
    "PH": "en-PH",
}

ISP_PREFIXES: Final = {
    "GB": ("81.2", "86.128", "82.132", "90.200", "109.150", "94.1"),
    "DE": ("84.150", "91.64", "93.192", "79.200", "87.123", "217.80"),
    "FR": ("90.0", "78.192", "86.200", "92.150", "176.180", "88.160"),
    "NL": ("83.80", "62.194", "77.160", "145.53", "84.104", "213.124"),
    "ES": ("88.0", "83.32", "79.144", "95.120", "80.58", "81.44"),
    "US": ("73.0", "98.200", "24.0", "174.48", "71.160", "108.20"),
    "IT": ("79.20", "151.38"),
    "PT": ("89.180", "85.243"),
    "JP": ("126.0", "60.100"),
    "TH": ("171.96", "184.22"),
    "AE": ("94.200", "86.96"),
}
"""Residential broadband /16 prefixes (public-looking ranges) per country."""

MOBILE_PREFIXES: Final = {
    "GB": ("2.24", "31.94", "82.132"),
    "DE": ("80.187", "46.114"),
    "FR": ("37.165", "92.184"),
    "NL": ("31.20", "77.60"),
    "ES": ("37.11", "85.58"),
    "US": ("172.56", "174.205"),
    "IT": ("5.90",),
    "PT": ("94.61",),
    "JP": ("49.96",),
    "TH": ("49.228",),
    "AE": ("5.193",),
}
"""Mobile carriers' NAT pools: few addresses, each shared by many subscribers."""

IPV6_PREFIXES: Final = {
    "GB": "2a02:c7c",
    "DE": "2003:e2",
    "FR": "2a01:cb00",
    "NL": "2001:1c00",
    "ES": "2a0c:5a80",
    "US": "2600:1700",
}

DOC_IPV4_PREFIXES: Final = ("192.0.2", "198.51.100", "203.0.113")
"""RFC 5737 documentation ranges, used for corporate VPN gateways and airport Wi-Fi."""

FRAUD_IP_PREFIXES: Final = {
    "hosting": ("45.134", "185.220", "5.188", "194.26", "91.219", "146.70", "193.29"),
    "NG": ("41.58", "105.112"),
    "BR": ("177.72", "189.6"),
    "VN": ("113.160", "14.232"),
    "ID": ("36.72", "114.124"),
    "RO": ("79.112", "86.120"),
    "MY": ("175.139",),
    "PH": ("112.198",),
}
"""Hosting/VPN ranges and far-away residential ranges fraudsters connect from."""

PHONE_MODELS: Final = (
    ("iOS", ("17.5.1", "17.6.1", "18.0", "18.0.1", "18.1"), "iPhone15,3", "1290x2796"),
    ("iOS", ("17.6.1", "18.0.1", "18.1"), "iPhone14,7", "1170x2532"),
    ("iOS", ("16.7.10", "17.6.1"), "iPhone12,8", "750x1334"),
    ("Android", ("14", "15"), "SM-S921B", "1080x2340"),
    ("Android", ("14", "15"), "Pixel 8", "1080x2400"),
    ("Android", ("13", "14"), "SM-A546B", "1080x2340"),
    ("Android", ("13", "14"), "Redmi Note 13", "1080x2400"),
    ("Android", ("12", "13"), "moto g54 5G", "1080x2400"),
)
"""(os, os versions, model, screen) for phones."""

DESKTOP_MODELS: Final = (
    ("Windows", ("10", "11"), "Chrome", "1920x1080"),
    ("Windows", ("11",), "Edge", "2560x1440"),
    ("Windows", ("10",), "Firefox", "1366x768"),
    ("macOS", ("14.6", "15.0", "15.1"), "Safari", "2560x1600"),
    ("macOS", ("14.6", "15.1"), "Chrome", "1440x900"),
    ("iPadOS", ("17.6", "18.0"), "Safari", "1620x2160"),
)
"""(os, os versions, browser, screen) for home computers and tablets."""

EMULATOR_MODEL: Final = ("Android", ("13", "14"), "sdk_gphone64_x86_64", "1080x2400")

CHROME_VERSIONS: Final = ("128.0.6613.137", "129.0.6668.100", "130.0.6723.91")


def ascii_fold(text: str) -> str:
    """Strip accents and keep letters and digits, lower-cased (for e-mail local parts).

    >>> ascii_fold("Müller-Lefèvre O'Brien")
    'muellerlefevreobrien'
    """
    text = text.replace("ß", "ss").replace("ü", "ue").replace("ö", "oe").replace("ä", "ae")
    text = text.replace("Ü", "Ue").replace("Ö", "Oe").replace("Ä", "Ae").replace("ı", "i")
    norm = unicodedata.normalize("NFKD", text)
    return "".join(c for c in norm if c.isascii() and c.isalnum()).lower()


def browser_user_agent(os_name: str, os_version: str, browser: str, model: str, chrome: str) -> str:
    """A realistic browser user agent string for a device.

    >>> browser_user_agent("Windows", "11", "Edge", "", "130.0.6723.91")[:40]
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64'
    """
    major = chrome.split(".")[0]
    if os_name == "iOS":
        v = os_version.replace(".", "_")
        return (
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {v} like Mac OS X) AppleWebKit/605.1.15 "
            f"(KHTML, like Gecko) Version/{os_version.split('.')[0]}.0 Mobile/15E148 "
            "Safari/604.1"
        )
    if os_name == "iPadOS":
        v = os_version.replace(".", "_")
        return (
            f"Mozilla/5.0 (iPad; CPU OS {v} like Mac OS X) AppleWebKit/605.1.15 "
            f"(KHTML, like Gecko) Version/{os_version.split('.')[0]}.0 Mobile/15E148 "
            "Safari/604.1"
        )
    if os_name == "Android":
        return (
            f"Mozilla/5.0 (Linux; Android {os_version}; {model}) AppleWebKit/537.36 "
            f"(KHTML, like Gecko) Chrome/{major}.0.0.0 Mobile Safari/537.36"
        )
    if os_name == "macOS":
        if browser == "Safari":
            return (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
                "(KHTML, like Gecko) Version/18.0 Safari/605.1.15"
            )
        return (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
            f"(KHTML, like Gecko) Chrome/{chrome} Safari/537.36"
        )
    if browser == "Firefox":
        return "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 Firefox/131.0"
    ua = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{chrome} Safari/537.36"
    )
    return ua + f" Edg/{chrome}" if browser == "Edge" else ua
