"""Typed import errors and the bilingual messages of every refusal and per-feature issue.

A refusal (the whole file) is an :class:`ImportRejected`; a problem with one feature is
an :class:`~etl.importers.report.Issue` in the report. Both carry a stable ``code`` and a
message in Chinese first, English second.
"""
from __future__ import annotations

from geodata.config import STORAGE_SRID
from geodata.i18n import BilingualError

#: code → (Chinese, English) templates, formatted with ``str.format``.
MESSAGES: dict[str, tuple[str, str]] = {
    # -- refusals of the whole file -------------------------------------------------
    "unsupported_format": ("不支持的文件格式:{name}。支持:压缩的 Shapefile(.zip)、GeoPackage、GeoJSON、"
                           "CSV/XLSX(含经纬度列)、GeoTIFF。",
                           "Unsupported file format: {name}. Supported: zipped Shapefile (.zip), GeoPackage, "
                           "GeoJSON, CSV/XLSX with lon/lat columns, GeoTIFF."),
    "file_too_large": ("文件过大({size} 字节,上限 {limit} 字节)。",
                       "File too large ({size} bytes, limit {limit} bytes)."),
    "empty_file": ("文件为空。", "The file is empty."),
    "bad_archive": ("压缩包损坏或不是 ZIP 文件:{error}", "Corrupt archive or not a ZIP file: {error}"),
    "archive_unsafe_path": ("压缩包含不安全的路径“{entry}”(绝对路径或“..”),已拒绝。",
                            "Archive entry '{entry}' has an unsafe path (absolute or '..'); refused."),
    "archive_symlink": ("压缩包含符号链接“{entry}”,已拒绝。", "Archive entry '{entry}' is a symbolic link; refused."),
    "archive_encrypted": ("压缩包含加密条目“{entry}”,无法导入。", "Archive entry '{entry}' is encrypted; cannot import."),
    "archive_too_many_entries": ("压缩包条目过多({count} 个,上限 {limit} 个)。",
                                 "Too many archive entries ({count}, limit {limit})."),
    "archive_entry_too_large": ("压缩包条目“{entry}”解压后过大({size} 字节,上限 {limit} 字节)。",
                                "Archive entry '{entry}' is too large uncompressed ({size} bytes, limit {limit})."),
    "archive_too_large": ("压缩包解压后总大小过大({size} 字节,上限 {limit} 字节),疑似压缩炸弹。",
                          "Archive too large uncompressed ({size} bytes, limit {limit}); looks like a zip bomb."),
    "archive_ratio": ("压缩包条目“{entry}”压缩比异常({ratio:.0f}:1,上限 {limit}:1),疑似压缩炸弹。",
                      "Archive entry '{entry}' has a suspicious compression ratio ({ratio:.0f}:1, limit {limit}:1);"
                      " looks like a zip bomb."),
    "archive_nested": ("压缩包内嵌套压缩包“{entry}”,请解开后再上传。",
                       "Archive contains a nested archive '{entry}'; unpack it and upload the contents."),
    "archive_method": ("压缩包条目“{entry}”使用 {method} 压缩方式,只接受不压缩(stored)和 Deflate(普通 ZIP);"
                       "请用常规 ZIP 方式重新打包。",
                       "Archive entry '{entry}' uses the {method} compression method; only stored and Deflate "
                       "(an ordinary ZIP) are accepted. Re-pack it as an ordinary ZIP."),
    "archive_total_ratio": ("压缩包解压后共 {size} 字节,而压缩包只有 {compressed} 字节(压缩比 {ratio:.0f}:1,上限 "
                            "{limit}:1),疑似压缩炸弹。",
                            "The archive expands to {size} bytes from {compressed} (ratio {ratio:.0f}:1, limit "
                            "{limit}:1); looks like a zip bomb."),
    "archive_size_mismatch": ("压缩包条目“{entry}”实际解压出 {actual} 字节,与其头部声明的 {declared} 字节不符,已拒绝。",
                              "Archive entry '{entry}' expands to {actual} bytes, not the {declared} bytes its "
                              "header declares; refused."),
    "file_misnamed": ("文件实为{what_zh},而扩展名为 {ext}。请改正扩展名后重新上传。",
                      "The file is {what_en} but is named {ext}. Correct the extension and upload it again."),
    "no_dataset": ("压缩包中没有可导入的数据(.shp、.gpkg、.geojson、.csv、.xlsx、.tif)。",
                   "No importable data in the archive (.shp, .gpkg, .geojson, .csv, .xlsx, .tif)."),
    "shapefile_incomplete": ("Shapefile“{name}”缺少 {missing} 文件。", "Shapefile '{name}' lacks its {missing} file."),
    "choose_layer": ("文件包含多个图层,请选择一个:{layers}", "The file has several layers; choose one: {layers}"),
    "layer_not_found": ("找不到图层“{layer}”。可选:{layers}", "Layer '{layer}' not found. Available: {layers}"),
    "unreadable": ("无法读取文件:{error}", "Cannot read the file: {error}"),
    "encoding_unknown": ("无法识别的编码“{encoding}”(来自 {source})。", "Unknown encoding '{encoding}' (from {source})."),
    "encoding_mismatch": ("属性文本不是 {encoding} 编码(来自 {source}),继续导入会产生乱码。请更正 .cpg 或指定编码。",
                          "Attribute text is not valid {encoding} (from {source}); importing would garble it. "
                          "Correct the .cpg or give the encoding."),
    "encoding_undetected": ("无法确定属性文本的编码(既不是 UTF-8 也不是 GBK/GB18030),请指定编码。",
                            "Cannot tell the attribute text encoding (neither UTF-8 nor GBK/GB18030); give the encoding."),
    "crs_required": ("缺少坐标系(.prj 或元数据),且坐标({sample})不可能是经纬度。请指定坐标系{hint}。",
                     "No coordinate reference system (.prj or metadata), and the coordinates ({sample}) cannot be "
                     "degrees. Give the CRS{hint_en}."),
    "crs_unplaced": ("缺少坐标系,坐标({sample})虽在经纬度范围内却不在本县附近。请指定坐标系。",
                     "No coordinate reference system, and the coordinates ({sample}) are in degree range but not "
                     "near the county. Give the CRS."),
    "crs_invalid": ("无法识别的坐标系:{crs}", "Unrecognised coordinate reference system: {crs}"),
    "crs_datum_needs_degrees": ("声明为 {datum} 的数据必须是经纬度坐标,但坐标系为 {crs}。",
                                "Data declared {datum} must be in degrees, but its CRS is {crs}."),
    "axes_swapped": ("坐标轴疑似颠倒(经度与纬度或 X 与 Y 互换):交换后 {share:.0%} 的要素落在本县范围内。"
                     "请确认后勾选“交换经纬度”重新导入。",
                     "The axes look swapped (lon/lat or X/Y exchanged): swapped, {share:.0%} of the features fall "
                     "in the county. Check and re-import with 'swap axes'."),
    "nothing_in_county": ("没有任何要素落在本县范围内(坐标系是否正确?)。", "No feature lies in the county (is the CRS right?)."),
    "no_columns": ("找不到经纬度列(如 经度/纬度、lon/lat、x/y)。列名:{columns}",
                   "No longitude/latitude columns found (e.g. 经度/纬度, lon/lat, x/y). Columns: {columns}"),
    "no_features": ("文件中没有要素。", "The file has no features."),
    "no_valid_features": ("全部 {rejected} 个要素都被拒绝,未导入任何数据。",
                          "All {rejected} features were rejected; nothing was imported."),
    "strict_rejected": ("严格模式:{rejected} 个要素被拒绝,整个文件未导入。",
                        "Strict mode: {rejected} features were rejected, so nothing was imported."),
    "target_unknown": ("未知的导入目标:{target}", "Unknown import target: {target}"),
    "target_format": ("{format} 文件不能导入到“{target}”。", "A {format} file cannot be imported into '{target}'."),
    "layer_name_required": ("导入自定义图层需要图层名(小写字母开头,字母数字下划线)。",
                            "A custom layer needs a layer name (lower-case letter first, then letters, digits, _)."),
    "layer_name_reserved": ("图层名“{name}”已被系统图层使用。", "Layer name '{name}' is taken by a built-in layer."),
    "scope_required": ("导入“{target}”需要全县权限。", "Importing into '{target}' needs county-wide access."),
    "geometry_family_mixed": ("自定义图层只能有一种几何类型;已按多数取“{family}”。",
                              "A custom layer holds one kind of geometry; the majority, '{family}', was kept."),
    "raster_no_crs": ("栅格没有坐标系,请指定坐标系。", "The raster has no coordinate reference system; give the CRS."),
    "raster_too_large": ("栅格过大({pixels} 像元,上限 {limit})。", "Raster too large ({pixels} pixels, limit {limit})."),
    "raster_unreadable": ("无法读取栅格:{error}", "Cannot read the raster: {error}"),
    "raster_outside": ("栅格范围不在本县内(坐标系是否正确?)。", "The raster does not cover the county (is the CRS right?)."),
    "already_imported": ("此文件此前已导入到该目标(报告 #{id}),未重复导入。",
                         "This file was already imported into this target (report #{id}); not imported again."),
    "internal_error": ("导入失败(内部错误 {error}),数据未改变。", "Import failed (internal error {error}); no data changed."),
    # -- per-feature issues ------------------------------------------------------
    "empty_geometry": ("几何为空。", "Empty geometry."),
    "bad_geometry": ("几何无法解析:{error}", "Unparsable geometry: {error}"),
    "non_finite": ("坐标含 NaN 或无穷大。", "Coordinates contain NaN or infinity."),
    "wrong_type": ("几何类型 {got} 不符合要求({want})。", "Geometry type {got} does not fit the layer ({want})."),
    "multi_part_point": ("多点要素含 {parts} 个点,每个设施应为一个点。",
                         "Multi-point with {parts} points; each facility must be one point."),
    "repaired": ("无效几何已修复:{reason};面积 {before:.1f} → {after:.1f} m²(变化 {delta:+.1f} m²)。",
                 "Invalid geometry repaired: {reason}; area {before:.1f} → {after:.1f} m² (change {delta:+.1f} m²)."),
    "repair_dropped_parts": ("修复后丢弃了 {dropped} 个非{family}部分。",
                             "Repair dropped {dropped} parts that were not {family}."),
    "parts_unioned": ("多部分要素的 {parts} 个部分相互重叠,已合并为并集:覆盖范围不变,重叠的 {overlap:.1f} m² 只计一次"
                      "(各部分面积之和 {before:.1f} m²,合并后 {after:.1f} m²)。",
                      "The feature's {parts} parts overlap and were merged (union): the area covered is unchanged, "
                      "the {overlap:.1f} m² overlap counts once (parts' sum {before:.1f} m², merged {after:.1f} m²)."),
    "repair_area_changed": ("修复使面积改变了 {pct:.1f}%({before:.1f} → {after:.1f} m²),超过 {tol:g}% 的容差,"
                            "请核对此要素。",
                            "The repair changed the area by {pct:.1f}% ({before:.1f} → {after:.1f} m²), more than "
                            "the {tol:g}% tolerance; check this feature."),
    "too_many_vertices": ("要素“{name}”有 {vertices} 个顶点,超过每个要素 {limit} 个的上限,未导入;请简化或拆分后再导入。",
                          "Feature '{name}' has {vertices} vertices, more than the {limit} allowed per feature; "
                          "not imported. Simplify or split it and import again."),
    "too_complex": ("要素“{name}”的几何过于复杂({vertices} 个顶点,预计校验约需 {estimate:.0f} 秒),超过每个要素 "
                    "{limit:g} 秒的预算,未导入;请简化或拆分后再导入。",
                    "Feature '{name}' is too complex ({vertices} vertices, checking it would take about "
                    "{estimate:.0f} s), over the {limit:g} s budget per feature; not imported. Simplify or split "
                    "it and import again."),
    "too_slow": ("要素“{name}”的几何校验用了 {seconds:.1f} 秒,超过每个要素 {limit:g} 秒的预算,未导入;请简化或拆分后再导入。",
                 "Checking feature '{name}' took {seconds:.1f} s, over the {limit:g} s budget per feature; not "
                 "imported. Simplify or split it and import again."),
    "encoding_ambiguous": ("属性文本按 {encoding} 和 {other} 解码都像中文(如“{sample}” / “{other_sample}”),"
                           "已采用 {encoding};如不对,请指定编码重新导入。",
                           "The attribute text reads as plausible Chinese both as {encoding} and as {other} "
                           "('{sample}' / '{other_sample}'); {encoding} was used. If that is wrong, import again "
                           "giving the encoding."),
    "encoding_implausible": ("属性文本也能按 {other} 解码,但得到的“{other_sample}”不像中文;已按 {encoding} 读取"
                             "(“{sample}”)。",
                             "The attribute text also decodes as {other}, but that gives '{other_sample}', which is "
                             "not plausible Chinese; read as {encoding} ('{sample}')."),
    "unrepairable": ("无效几何无法修复:{reason}", "Invalid geometry could not be repaired: {reason}"),
    "duplicate_id": ("编号 {id} 重复(首次出现在第 {first} 行)。", "Duplicate id {id} (first seen in row {first})."),
    "outside_county": ("位于本县范围之外。", "Lies outside the county."),
    "no_village": ("不在任何(有权编辑的)行政村内。", "Not inside any village (that you may edit)."),
    "missing_field": ("缺少必填字段“{field}”。", "Missing required field '{field}'."),
    "bad_value": ("字段“{field}”的值“{value}”无效:{why}", "Field '{field}' has an invalid value '{value}': {why}"),
    "unknown_type": ("未知的类型“{value}”。可选:{choices}", "Unknown type '{value}'. Choices: {choices}"),
    "unknown_village": ("找不到代码为 {code} 的行政村。", "No village with code {code}."),
    "unknown_town": ("找不到代码为 {code} 的乡镇。", "No town with code {code}."),
    "unknown_grid": ("找不到代码为 {code} 的现行网格。", "No current grid with code {code}."),
    "bad_coordinate": ("坐标“{value}”不是数字。", "Coordinate '{value}' is not a number."),
    "converted": ("坐标已由 {datum} 转换为 CGCS2000。", "Coordinates converted from {datum} to CGCS2000."),
    "axis_swap_applied": ("已按要求交换坐标轴。", "Axes swapped as requested."),
    "crs_assumed": (f"文件未声明坐标系;坐标为经纬度且位于本县,按 CGCS2000(EPSG:{STORAGE_SRID})处理。",
                    f"The file declares no CRS; the coordinates are degrees inside the county, taken as CGCS2000 "
                    f"(EPSG:{STORAGE_SRID})."),
    "crs_override": ("按指定的坐标系 {crs} 读取(文件声明为 {declared})。",
                     "Read in the given CRS {crs} (the file declares {declared})."),
}


def message(code: str, /, **fmt) -> tuple[str, str]:
    """Return the (Chinese, English) message for ``code`` with ``fmt`` filled in.

    Parameters
    ----------
    code : str
        A key of :data:`MESSAGES`; unknown codes are returned as they are.
    **fmt
        Values for the templates' placeholders. Missing ones are left visible.

    Returns
    -------
    tuple of str
        The Chinese and English texts.
    """
    zh, en = MESSAGES.get(code, (code, code))
    try:
        return zh.format(**fmt), en.format(**fmt)
    except (KeyError, IndexError, ValueError):
        return zh, en


class ImportRejected(BilingualError):
    """The whole file is refused; nothing was written to the data tables.

    Parameters
    ----------
    code : str
        Stable reason code (a key of :data:`MESSAGES`).
    **details
        Values for the message and for the saved report.
    """

    http_status = 422  # the request was understood, the file is refused

    def __init__(self, code: str, /, **details):
        zh, en = message(code, **details)
        super().__init__(zh, en)
        self.code = code
        self.details = details


class ArchiveRejected(ImportRejected):
    """An archive was refused before anything was extracted (unsafe entry or size limit)."""


class CrsRequired(ImportRejected):
    """The coordinate reference system is missing or ambiguous and must be given."""
