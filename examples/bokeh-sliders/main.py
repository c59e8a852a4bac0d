"""Bokeh demo for Dormouse: a sine wave shaped by sliders.

This is a *directory-format* Bokeh app: serve the directory, not this file,
with ``bokeh serve examples/bokeh-sliders`` - the app is then served at
``<prefix>bokeh-sliders`` (Bokeh names an app after its directory). Each
browser session runs this module once; the slider callbacks run in Python on
the server and push the new data to the browser over the websocket.
"""

from __future__ import annotations

import math

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Div, Slider
from bokeh.plotting import figure

POINTS = 300
SPAN = 4 * math.pi


def wave(amplitude: float, frequency: float, phase: float) -> dict[str, list[float]]:
    """Data for ``amplitude * sin(frequency * x + phase)`` over ``[0, SPAN]``."""
    xs = [SPAN * i / (POINTS - 1) for i in range(POINTS)]
    ys = [amplitude * math.sin(frequency * x + phase) for x in xs]
    return {"x": xs, "y": ys}


source = ColumnDataSource(data=wave(1.0, 1.0, 0.0))

plot = figure(
    title="y = a\u00b7sin(f\u00b7x + \u03c6)",
    height=380,
    sizing_mode="stretch_width",
    x_range=(0, SPAN),
    y_range=(-5.5, 5.5),
    tools="pan,wheel_zoom,reset,save",
    toolbar_location="above",
)
plot.line("x", "y", source=source, line_width=3, line_alpha=0.8, color="#3e7cb1")

amplitude = Slider(title="Amplitude (a)", value=1.0, start=0.1, end=5.0, step=0.1)
frequency = Slider(title="Frequency (f)", value=1.0, start=0.1, end=5.0, step=0.1)
phase = Slider(title="Phase (\u03c6)", value=0.0, start=0.0, end=2 * math.pi, step=0.1)


def update(attr: str, old: float, new: float) -> None:
    """Recompute the curve from the three sliders (runs on the server)."""
    source.data = wave(amplitude.value, frequency.value, phase.value)


for slider in (amplitude, frequency, phase):
    slider.on_change("value", update)

header = Div(
    text=(
        "<h1 style='margin:0 0 4px;font-weight:600'>Sine wave</h1>"
        "<p style='margin:0;color:#52606d'>Drag the sliders; a Python callback on "
        "the Bokeh server recomputes the curve.</p>"
    ),
    sizing_mode="stretch_width",
)

doc = curdoc()
doc.add_root(column(header, amplitude, frequency, phase, plot, sizing_mode="stretch_width"))
doc.title = "Sine wave - Dormouse demo"
