import json
from pathlib import Path

import pytest

from laionet_bench.catalog import WNID_ALIASES, lemma_map, load_catalog, normalize_text, read_class_file
from laionet_bench.errors import CatalogError, UnknownNameError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_catalog_is_timm_order():
    import timm.data

    catalog = load_catalog()
    assert len(catalog) == 1000
    assert catalog.wnids == list(timm.data.ImageNetInfo().label_names())
    assert catalog.get("n02123394").synset == "persian_cat.n.01"
    assert catalog.get("n02123394").name == "persian cat"


def test_queries_equal_reference_exactly():
    reference_file = SHARED / "official_name_def_queries.json"
    if not reference_file.exists():  # the packaged copy is checked below either way
        pytest.skip("shared/data not beside this checkout")
    reference = json.loads(reference_file.read_text())
    ours = {c.wnid: c.query for c in load_catalog()}
    assert ours == reference


def test_packaged_class_file_is_the_reference():
    reference_file = SHARED / "official_ILSVRC2012_synsets.txt"
    if not reference_file.exists():
        pytest.skip("shared/data not beside this checkout")
    assert read_class_file() == read_class_file(reference_file)


def test_official_lemma_rule_counts_and_quirks():
    lemmas = lemma_map("official")
    assert len(lemmas) == 1825
    assert len(lemmas.wnids) == 995
    # machine crane is absent from the class file: "crane" belongs to the bird only
    assert lemmas.lemma_to_wnid["crane"] == "n02012849"
    assert "n03126707" not in lemmas.wnids
    # the husky's non-standard wnid is translated to ImageNet-1k's
    assert lemmas.lemma_to_wnid["Siberian husky"] == WNID_ALIASES["n02112837"] == "n02110185"
    # case-sensitive and verbatim: lemmas keep original case
    assert "Granny Smith" in lemmas.lemma_to_wnid
    assert "granny smith" not in lemmas.lemma_to_wnid


def test_official_rule_drops_lemmas_shared_by_two_classes(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("id: lemmas\nn01440764: tench, fish\nn01443537: goldfish, fish\nn01484850: shark\n")
    lemmas = lemma_map("official", str(path))
    assert lemmas.lemma_to_wnid == {"tench": "n01440764", "goldfish": "n01443537", "shark": "n01484850"}


def test_ours_rule_normalises_and_keeps_both_cranes_other_lemmas():
    lemmas = lemma_map("ours")
    assert "crane" not in lemmas.lemma_to_wnid  # ambiguous between the two cranes
    assert lemmas.lemma_to_wnid["granny smith"] == "n07742313"
    assert lemmas.lemma_to_wnid[normalize_text("jack-o'-lantern")] == "n03590841"
    assert normalize_text("  Jack-o'-Lantern!! ") == "jack o lantern"


def test_unknown_rules_and_wnids_get_suggestions():
    with pytest.raises(UnknownNameError, match="did you mean: official"):
        lemma_map("oficial")
    with pytest.raises(UnknownNameError, match="n01440764"):
        load_catalog().get("n01440765")


def test_bad_class_file_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("id: lemmas\nn01440764: tench\nthis is not a class line\n")
    with pytest.raises(CatalogError, match=r"bad.txt:3"):
        read_class_file(path)


def test_search():
    catalog = load_catalog()
    assert [c.wnid for c in catalog.search("n01440764")] == ["n01440764"]
    assert catalog.search("0")[0].wnid == "n01440764"
    assert any(c.wnid == "n02110185" for c in catalog.search("Husky"))
