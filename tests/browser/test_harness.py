"""The browser harness itself: pixel counts, lasso drags, notebook errors and kernel execution."""

import pytest
from harness import element_pixels, lasso, write_notebook

# A 200×100 pad that records mouse events in its own coordinates.
PAD = """
<div id="pad" style="position:absolute; left:50px; top:40px; width:200px; height:100px; background:#fff"></div>
<script>
  window.events = [];
  const pad = document.getElementById('pad');
  for (const kind of ['mousedown', 'mousemove', 'mouseup'])
    pad.addEventListener(kind, (e) => window.events.push([kind, e.offsetX, e.offsetY, e.buttons]));
</script>
"""


def test_element_pixels_counts_what_differs_from_the_background(page):
    page.set_content('<div id="box" style="width:100px; height:50px; background:#fff">'
                     '<div style="width:10px; height:10px; background:#000"></div></div>')
    assert element_pixels(page.locator("#box")) == 100


def test_lasso_drags_a_closed_polygon(page):
    page.set_content(PAD)
    vertices = lasso(page, page.locator("#pad"), [(0.1, 0.1), (0.9, 0.1), (0.5, 0.9)], steps=4)
    assert vertices == [(70, 50), (230, 50), (150, 130)]
    events = page.evaluate("window.events")
    presses = [e for e in events if e[0] != "mousemove"]
    assert presses == [["mousedown", 20, 10, 1], ["mouseup", 20, 10, 0]]
    moves = [(x, y) for kind, x, y, buttons in events if kind == "mousemove" and buttons == 1]
    assert len(moves) == 3 * 4 and {(180, 10), (100, 90), (20, 10)} <= set(moves)


def test_notebook_errors_fail_fast_and_the_kernel_answers(lab, lab_page):
    write_notebook(lab.root / "error.ipynb", "print('first cell ran')", "raise ValueError('no such map')")
    lab_page.open("error.ipynb")
    lab_page.run_all()
    with pytest.raises(AssertionError, match="ValueError: no such map"):
        lab_page.wait_for_output("a sentinel never printed", timeout=60)
    assert "first cell ran" in lab_page.outputs()
    assert lab_page.execute("print(6 * 7)") == "42\n"
