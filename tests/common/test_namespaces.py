from threadline.namespaces import user_label, user_namespace


def test_a_label_never_holds_a_dot_and_different_ids_stay_different() -> None:
    ids = ["ana", "ana.lima@example.com", "ana%2Elima@example%2Ecom", "a%b", "a%25b", "a.b.", "."]
    labels = [user_label(i) for i in ids]
    assert all("." not in label for label in labels)
    assert len(set(labels)) == len(ids)
    assert user_label("ana") == "ana"  # ids without '.' or '%' keep the label they always had
    assert user_namespace("a.b", "memories") == ("users", "a%2Eb", "memories")
