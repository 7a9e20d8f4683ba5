from trainer.builders.names import distinct_bases


def test_a_name_two_keys_share_keeps_the_extension_and_a_number_where_that_is_taken_too():
    keys = ["x.png", "x.jpg", "x_png", "solo.png"]
    bases = distinct_bases(keys, lambda k: k.rsplit(".", 1)[0], lambda k: k.replace(".", "_"))
    assert bases["solo.png"] == "solo" and len(set(bases.values())) == len(keys)
    assert bases["x.jpg"] == "x_jpg" and bases["x.png"] == "x_png_1" and bases["x_png"] == "x_png"
