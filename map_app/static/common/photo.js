/* Photos resized in the browser before upload (shared by the worker's and the villagers' pages).
 *
 *   window.dvmapPhoto.resize(file, {maxSide: 1600, quality: 0.8}) → Promise<Blob> (image/jpeg)
 *
 * A 12-megapixel phone photo is 3–6 MB; at 1600 px and quality 0.8 it is ~200–400 KB, seconds
 * instead of minutes on a rural 3G link. createImageBitmap with imageOrientation 'from-image'
 * applies the EXIF rotation, so the uploaded pixels are upright (the JPEG written by the canvas
 * carries no EXIF, hence no double rotation, and no GPS/device metadata). A file the browser cannot decode is returned as is:
 * the server then decides (it sniffs the bytes and refuses what is not an image).
 */
(function () {
  'use strict';

  async function decode(file) {
    if (window.createImageBitmap) {
      try {
        return await createImageBitmap(file, {imageOrientation: 'from-image'});
      } catch (e) { /* fall back to <img> below */ }
    }
    const url = URL.createObjectURL(file);
    try {
      const img = new Image();
      img.decoding = 'async';
      img.src = url;
      await img.decode();  // <img> follows EXIF orientation by default (image-orientation: from-image)
      return img;
    } finally {
      setTimeout(() => URL.revokeObjectURL(url), 0);
    }
  }

  function toBlob(canvas, quality) {
    return new Promise((resolve, reject) => {
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('toBlob failed'))), 'image/jpeg', quality);
    });
  }

  async function resize(file, options) {
    const opts = Object.assign({maxSide: 1600, quality: 0.8}, options || {});
    let source;
    try {
      source = await decode(file);
    } catch (e) {
      return file;
    }
    const w = source.width || source.naturalWidth;
    const h = source.height || source.naturalHeight;
    const scale = Math.min(1, opts.maxSide / Math.max(w, h));
    // Always re-encoded, even when small: the canvas JPEG carries no EXIF (no GPS, no device serial).
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.round(w * scale));
    canvas.height = Math.max(1, Math.round(h * scale));
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#fff';  // transparent PNGs become white, not black, in JPEG
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
    if (source.close) source.close();
    return toBlob(canvas, opts.quality);
  }

  window.dvmapPhoto = {resize: resize};
})();
