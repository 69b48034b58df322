from django.urls import path

from . import quality_views, views

app_name = "analytics"
urlpatterns = [
    path("", views.report, name="report"),
    path("patients/", views.patients, name="patients"),
    path("published/", views.published_vs_registry, name="published"),
    path("download/<slug:table>.<str:fmt>", views.download, name="download"),
    path("figures/<slug:name>.<str:fmt>", views.figure, name="figure"),
    path("figures/shift/<slug:key>.<str:fmt>", views.shift_figure, name="shift_figure"),
]

# The flow chart (the paper's Figure 1), served at /flow/ (config/urls.py).
flow_patterns = (
    [
        path("", views.flow_chart, name="chart"),
        path("flow-chart.svg", views.flow_chart_svg, name="svg"),
        path("flow-chart.png", views.flow_chart_png, name="png"),
    ],
    "flow",
)

# Quality of care per site and quarter, served at /quality/ (config/urls.py).
quality_patterns = (
    [
        path("", quality_views.page, name="page"),
        path("patients/", quality_views.patients, name="patients"),
        path("download.<str:fmt>", quality_views.download, name="download"),
        path("figures/<slug:name>.<str:fmt>", quality_views.figure, name="figure"),
    ],
    "quality",
)
