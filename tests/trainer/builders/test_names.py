from trainer.builders.names import MAX_BASE_BYTES, distinct_bases


def test_a_name_two_keys_share_keeps_the_extension_and_a_number_where_that_is_taken_too():
    keys = ["x.png", "x.jpg", "x_png", "solo.png"]
    bases = distinct_bases(keys, lambda k: k.rsplit(".", 1)[0], lambda k: k.replace(".", "_"))
    assert bases["solo.png"] == "solo" and len(set(bases.values())) == len(keys)
    assert bases["x.jpg"] == "x_jpg" and bases["x.png"] == "x_png_1" and bases["x_png"] == "x_png"


def test_a_base_too_long_for_a_file_name_keeps_its_start_and_a_hash_of_its_key():
    """A name of subfolders joined past 255 bytes could not be written ("File name too long")."""
    deep = "ä" * 150 + "/"
    keys = [deep + "x.png", deep + "y.png", deep + "x.jpg", "solo.png"]
    bases = distinct_bases(keys, lambda k: k.rsplit(".", 1)[0].replace("/", "__"),
                           lambda k: k.replace("/", "__").replace(".", "_"))
    assert bases["solo.png"] == "solo" and len(set(bases.values())) == len(keys)
    for key in keys[:3]:
        assert len(bases[key].encode()) <= MAX_BASE_BYTES and bases[key].startswith("ä" * 90)
    assert bases == distinct_bases(keys, lambda k: k.rsplit(".", 1)[0].replace("/", "__"),
                                   lambda k: k.replace("/", "__").replace(".", "_"))  # the same on every build
