"""User-facing text: Chinese first, English second.

Domain errors carry both languages; the UI picks one with :func:`t`.
"""
from __future__ import annotations

LANGS = ("zh", "en")

CATALOG: dict[str, tuple[str, str]] = {
    "app.title": ("数字乡村一张图", "Digital Village One Map"),
    "app.subtitle": ("县域基层治理", "County grassroots governance"),
    "panel.layers": ("图层", "Layers"),
    "panel.legend": ("图例", "Legend"),
    "panel.details": ("详情", "Details"),
    "panel.hint": ("点击地图上的村、网格、资源或感知设备查看详情。",
                   "Click a village, grid, resource or sensor on the map to see its details."),
    "search.placeholder": ("搜索村名或区划代码", "Search village by name or code"),
    "search.nothing": ("没有找到该村", "No village found"),
    "lang.switch": ("English", "中文"),
    "population.metric": ("人口指标", "Population measure"),
    "population.level": ("统计单元", "Unit"),
    "population.total": ("总人口", "Total population"),
    "population.share60": ("60岁以上占比", "Share aged 60+"),
    "population.households": ("户数", "Households"),
    "level.village": ("行政村", "Village"),
    "level.grid": ("网格", "Grid"),
    "field.code": ("代码", "Code"),
    "field.town": ("所属乡镇", "Town"),
    "field.village": ("所属村", "Village"),
    "field.population": ("人口", "Population"),
    "field.age60": ("60岁以上", "Aged 60+"),
    "field.households": ("户数", "Households"),
    "field.area": ("面积", "Area"),
    "field.grids": ("网格数", "Grids"),
    "field.resources": ("公共资源", "Public resources"),
    "field.sensors": ("感知设备", "Sensors"),
    "field.worker": ("网格员", "Grid worker"),
    "field.phone": ("电话", "Phone"),
    "field.type": ("类型", "Type"),
    "field.capacity": ("容量", "Capacity"),
    "field.status": ("状态", "Status"),
    "field.latest": ("最新读数", "Latest reading"),
    "field.time": ("时间", "Time"),
    "field.version": ("版本", "Version"),
    "field.valid_from": ("生效时间", "Valid from"),
    "field.count": ("数量", "Count"),
    "status.normal": ("正常", "Normal"),
    "status.alarm": ("告警", "Alarm"),
    "status.offline": ("离线", "Offline"),
    "error.not_found": ("未找到该要素(编号 {id}),可能已被删除或无权查看。",
                        "Feature {id} not found; it may have been removed or is outside your scope."),
    "error.bad_id": ("要素编号无效:{id}", "Invalid feature id: {id}"),
    "aggregate.hint": ("放大地图以查看单个设备", "Zoom in to see individual sensors"),
    "unit.people": ("人", "people"),
    "unit.km2": ("平方公里", "km²"),
    "none": ("无", "none"),
}


def t(key: str, lang: str = "zh", **fmt) -> str:
    """Translate ``key`` into ``lang`` ('zh' or 'en'), formatting ``fmt`` in."""
    zh, en = CATALOG.get(key, (key, key))
    text = en if lang == "en" else zh
    return text.format(**fmt) if fmt else text


def pick(zh: str, en: str, lang: str) -> str:
    """Choose between a Chinese and an English string."""
    return en if lang == "en" else zh


class BilingualError(Exception):
    """An error a person will read, in Chinese and English.

    ``code`` is a short machine-readable reason and ``http_status`` the status the
    HTTP edge answers with (map_app/errors.py renders both once, for every route and
    callback); subclasses set them as class attributes, a raise site may override.
    """

    code: str = "bad_request"
    http_status: int = 400

    def __init__(self, message_zh: str, message_en: str, *, code: str | None = None,
                 http_status: int | None = None):
        super().__init__(f"{message_zh} / {message_en}")
        self.message_zh = message_zh
        self.message_en = message_en
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status

    def message(self, lang: str = "zh") -> str:
        return pick(self.message_zh, self.message_en, lang)

    def bilingual(self) -> str:
        """Both languages on one line, Chinese first."""
        return f"{self.message_zh} / {self.message_en}"

    def as_dict(self) -> dict:
        """The JSON body of an error answer: code, both messages, and both on one line."""
        return {"code": str(self.code), "message_zh": self.message_zh, "message_en": self.message_en,
                "error": self.bilingual()}
