"""Country names and codes as exports write them -> ISO 3166-1 alpha-2 (pycountry + a short alias list)."""

from __future__ import annotations

import pytest

from crm_lakehouse.countries import country_code


@pytest.mark.parametrize(("written", "code"), [
    ("DE", "DE"), ("deu", "DE"), ("276", "DE"), ("Germany", "DE"), ("Deutschland", "DE"), ("Allemagne", "DE"),
    ("Alemania", "DE"), ("Germania", "DE"), ("德国", "DE"), ("ドイツ", "DE"),
    ("United Kingdom", "GB"), ("Vereinigtes Königreich", "GB"), ("Royaume-Uni", "GB"), ("UK", "GB"), ("England", "GB"),
    ("EIRE", "IE"), ("Ireland", "IE"), ("Irlande", "IE"), ("the Netherlands", "NL"), ("Netherlands", "NL"),
    ("Holland", "NL"), ("Niederlande", "NL"), ("Pays-Bas", "NL"), ("中国", "CN"), ("CHN", "CN"), ("PRC", "CN"),
    ("U.S.A.", "US"), ("United States", "US"), ("Estados Unidos", "US"), ("RSA", "ZA"), ("South Africa", "ZA"),
    ("Côte d'Ivoire", "CI"), ("cote d ivoire", "CI"), ("Russia", "RU"), ("Russian Federation", "RU"),
    ("Czechia", "CZ"), ("Czech Republic", "CZ"), ("Korea, Republic of", "KR"), ("South Korea", "KR"),
    ("  france ", "FR"), ("España", "ES"), ("Spanien", "ES"),
    ("European Community", None), ("Channel Islands", None), ("Unspecified", None), ("", None), (None, None),
])
def test_codes_and_names_in_our_regions_languages_become_iso_alpha2(written, code):
    assert country_code(written) == code
