from threadline_retrieval.keyword import KeywordIndex


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
