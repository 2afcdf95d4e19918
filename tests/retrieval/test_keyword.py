import pytest
from threadline.languages import LANGUAGES
from threadline_retrieval.keyword import Analyzer, KeywordIndex, UnknownLanguage, stop_words_of


def test_rare_terms_rank_first_and_removal_forgets() -> None:
    index = KeywordIndex()
    index.add(1, "the error code E1234 means the disk is full")
    index.add(2, "the disk is the disk")
    index.add(3, "nothing relevant here")
    assert index.search("E1234 disk", 3)[0][0] == 1
    assert [row for row, _ in index.search("disk", 3)] == [2, 1]
    index.remove(1)
    assert index.search("E1234", 3) == []
    assert index.search("disk", 3, allowed={3}) == []


def test_inflections_match_through_their_stem() -> None:
    index = KeywordIndex()
    index.add(1, "The service runs on two cores.")
    index.add(2, "Connections are pooled.")
    assert [row for row, _ in index.search("running", 3)] == [1]
    assert [row for row, _ in index.search("connected", 3)] == [2]


def test_stop_words_are_neither_indexed_nor_searched() -> None:
    assert Analyzer().terms("The cat is on the mat") == ["cat", "mat"]
    index = KeywordIndex()
    index.add(1, "the history of the war")
    index.add(2, "a cat")
    assert index.search("the of a", 3) == []
    # Only "cat" counts: the stop words neither match row 1 nor lengthen the query.
    assert [row for row, _ in index.search("the cat of the", 3)] == [2]


def test_a_collection_in_another_language_stems_in_it() -> None:
    french = KeywordIndex("French")
    assert french.language == "french"
    french.add(1, "Les chevaux mangeaient du foin.")
    assert [row for row, _ in french.search("cheval manger", 3)] == [1]
    english = KeywordIndex()
    english.add(1, "Les chevaux mangeaient du foin.")
    assert english.search("cheval manger", 3) == []


def test_an_unknown_language_is_refused_with_the_choices() -> None:
    with pytest.raises(UnknownLanguage, match=r"unknown language 'klingon'; one of: .*english.*french"):
        KeywordIndex("klingon")


def test_adding_and_removing_in_place_scores_as_a_fresh_index() -> None:
    texts = {
        1: "Running services restart when their leases expire.",
        2: "A lease expires after thirty seconds without renewal.",
        3: "The runner renews every lease it holds.",
        4: "Nothing here is about leases.",
    }
    incremental = KeywordIndex()
    for row, text in texts.items():
        incremental.add(row, text)
    incremental.remove(2)
    incremental.remove(4)
    incremental.add(5, "Expired leases are renewed by the next runner.")
    fresh = KeywordIndex()
    for row, text in [(1, texts[1]), (3, texts[3]), (5, "Expired leases are renewed by the next runner.")]:
        fresh.add(row, text)
    for query in ("lease expiring", "runs", "renewal of leases"):
        got, want = incremental.search(query, 5), fresh.search(query, 5)
        assert [row for row, _ in got] == [row for row, _ in want]
        assert [score for _, score in got] == pytest.approx([score for _, score in want])
    assert 2 not in {row for row, _ in incremental.search("thirty seconds", 5)}


@pytest.mark.parametrize(
    ("language", "text", "terms"),
    [
        (
            "german",
            "Die Katzen schlafen auf dem Sofa, und der Hund bellt.",
            ["katz", "schlaf", "sofa", "hund", "bellt"],
        ),
        ("french", "Les chevaux mangeaient du foin dans la grange.", ["cheval", "mang", "foin", "grang"]),
        ("spanish", "Los niños están jugando en el parque con sus perros.", ["niñ", "jug", "parqu", "perr"]),
    ],
)
def test_a_collection_language_drops_its_stop_words_and_stems(language: str, text: str, terms: list[str]) -> None:
    assert Analyzer(language).terms(text) == terms
    # English keeps its own short list: the other language's articles stay words there.
    assert len(Analyzer("english").terms(text)) > len(terms)


def test_a_query_of_another_languages_stop_words_finds_nothing() -> None:
    index = KeywordIndex("german")
    index.add(1, "Der Vertrag wurde von beiden Seiten unterschrieben.")
    index.add(2, "Die Kündigung des Vertrags ist schriftlich einzureichen.")
    assert index.search("der die von des ist", 3) == []
    # The stop words neither match nor count: only "Verträge" (stem "vertrag") scores, equally in both rows.
    assert {row for row, _ in index.search("die Verträge von der", 3)} == {1, 2}


def test_every_language_but_four_has_stop_words() -> None:
    without = {language for language in LANGUAGES if not stop_words_of(language)}
    # No list in either package; their words are all indexed, as every non-English one was before.
    assert without == {"nepali", "serbian", "tamil", "yiddish"}
    assert stop_words_of("porter") == stop_words_of("english")
    assert stop_words_of("dutch_porter") == stop_words_of("dutch")
    # The longer lists' content words stay searchable where the shorter list is used.
    assert not {"mensch", "jahr", "gott"} & stop_words_of("german")


def test_words_written_with_combining_marks_stay_whole() -> None:
    # Devanagari vowel signs are combining marks, not \w: a plain \w+ split "हिंदी" into letters.
    assert Analyzer("hindi").terms("भारत में हिंदी भाषा है") == ["भारत", "हिंद", "भाष"]
    index = KeywordIndex("hindi")
    index.add(1, "हिंदी भाषा")
    index.add(2, "तमिल")
    assert [row for row, _ in index.search("भाषा", 3)] == [1]
