from django.urls import path

from . import views

app_name = "analytics"
urlpatterns = [
    path("", views.report, name="report"),
    path("patients/", views.patients, name="patients"),
    path("published/", views.published_vs_registry, name="published"),
    path("download/<slug:table>.<str:fmt>", views.download, name="download"),
    path("figures/<slug:name>.<str:fmt>", views.figure, name="figure"),
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
