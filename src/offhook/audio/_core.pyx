# cython: language_level=3
"""Compiled audio core: thin wrappers over the C kernels in csrc/.

Inputs are any C-contiguous bytes-like object (bytes, bytearray, memoryview, array); outputs are new
`bytes`. The buffer protocol is used directly (no typed memoryviews) because acquiring a memoryview
costs more than decoding a whole 20 ms frame.
"""
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.number cimport PyNumber_Index
from libc.math cimport isfinite
from libc.stdint cimport int16_t, uint8_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

from offhook.audio._kernels cimport *

oh_g711_init()

# A streaming API never needs one chunk this large; refusing it early beats a multi-GiB allocation.
MAX_INPUT_BYTES = 64 * 1024 * 1024
cdef Py_ssize_t _MAX_IN = MAX_INPUT_BYTES

# Kaiser design: 72 dB leaves margin over the 70 dB spec at the 2 ms delay cap.
cdef double _ATTEN_DB = 72.0
cdef double _DELAY_LIMIT_S = 0.002


cdef extern from *:
    """
    /* A view of a bytes object without the buffer protocol: obj stays NULL, so PyBuffer_Release
     * does nothing, and the bytes are kept alive by the caller's reference. */
    static inline void oh_view_of_bytes(Py_buffer *v, PyObject *b) {
        v->buf = PyBytes_AS_STRING(b);
        v->len = PyBytes_GET_SIZE(b);
        v->obj = NULL;
    }
    """
    void _view_of_bytes "oh_view_of_bytes"(Py_buffer *v, object b)


cdef inline int _acquire(object obj, Py_buffer *view, str what) except -1:
    """Fill view with obj's bytes; release with PyBuffer_Release (a no-op for the bytes fast path)."""
    if type(obj) is bytes:
        # The per-frame case: the buffer protocol would cost a third of a 20 ms frame's work.
        _view_of_bytes(view, obj)
    else:
        _acquire_any(obj, view, what)
    if view.len > _MAX_IN:
        PyBuffer_Release(view)
        raise ValueError(f"{what} is {view.len} bytes; chunks above {_MAX_IN} bytes are refused")
    return 0


cdef int _acquire_any(object obj, Py_buffer *view, str what) except -1:
    if obj is None or isinstance(obj, str):
        raise TypeError(f"{what} must be a bytes-like object, not {type(obj).__name__}")
    try:
        PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    except BufferError as e:
        raise ValueError(f"{what} must be a contiguous buffer: {e}") from None
    except TypeError:
        raise TypeError(f"{what} must be a bytes-like object, not {type(obj).__name__}") from None
    return 0


cdef int _int_arg(object v, str name) except? -1:
    """An integer argument: ints and integer-like objects only (a float would be truncated
    silently); values beyond the C int range are clamped, so the caller's range check reports them."""
    if isinstance(v, bool):
        raise TypeError(f"{name} must be an integer, not bool")
    try:
        i = PyNumber_Index(v)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(v).__name__}") from None
    return max(-2**31, min(2**31 - 1, i))


def _simd_level():
    """Instruction set the kernels use: 0 portable C, 1 AVX2, 2 AVX-512BW (for tests and benchmarks)."""
    return oh_simd_level()


def _cap_simd(int level):
    """Use at most `level` from now on (Resamplers keep the level they were made with); returns
    the level in effect. Tests use it to check every kernel against the portable C."""
    return oh_simd_cap(level)


cdef inline bytes _new_bytes(Py_ssize_t n):
    return PyBytes_FromStringAndSize(NULL, n)


def ulaw_decode(data):
    """G.711 mu-law bytes -> PCM16 little-endian (2 bytes per input byte)."""
    cdef Py_buffer view
    _acquire(data, &view, "ulaw_decode input")
    try:
        out = _new_bytes(view.len * 2)
        oh_ulaw_decode(<const uint8_t *>view.buf, <size_t>view.len, <int16_t *>PyBytes_AS_STRING(out))
        return out
    finally:
        PyBuffer_Release(&view)


def ulaw_encode(pcm):
    """PCM16 little-endian -> G.711 mu-law (1 byte per sample)."""
    cdef Py_buffer view
    _acquire(pcm, &view, "ulaw_encode input")
    try:
        if view.len & 1:
            raise ValueError(f"PCM16 input must have an even byte length, got {view.len}")
        out = _new_bytes(view.len // 2)
        oh_ulaw_encode(<const int16_t *>view.buf, <size_t>(view.len // 2), <uint8_t *>PyBytes_AS_STRING(out))
        return out
    finally:
        PyBuffer_Release(&view)


def ulaw_level_db(data):
    """RMS level of mu-law audio in dBFS (-100.0 for empty input or digital silence)."""
    cdef Py_buffer view
    _acquire(data, &view, "ulaw_level_db input")
    try:
        return oh_ulaw_level_db(<const uint8_t *>view.buf, <size_t>view.len, OH_LEVEL_FLOOR_DB)
    finally:
        PyBuffer_Release(&view)


def pcm_level_db(pcm):
    """RMS level of PCM16 LE audio in dBFS (-100.0 for empty input or digital silence)."""
    cdef Py_buffer view
    _acquire(pcm, &view, "pcm_level_db input")
    try:
        return oh_pcm_level_db(<const int16_t *>view.buf, <size_t>(view.len // 2), OH_LEVEL_FLOOR_DB)
    finally:
        PyBuffer_Release(&view)


cdef class Resampler:
    """Streaming PCM16 resampler (polyphase Kaiser FIR, <= 2 ms delay towards/from 8 kHz).

    Every process() call returns all the output its input allows; nothing is held back beyond the
    fixed filter delay (`delay_samples` at the destination rate). flush() emits the filter tail and
    resets for a new stream.
    """
    cdef oh_resampler rs
    cdef bint ready

    def __cinit__(self, src_rate, dst_rate):
        self.ready = False
        src_rate = _int_arg(src_rate, "src_rate")
        dst_rate = _int_arg(dst_rate, "dst_rate")
        rc = oh_rs_init(&self.rs, src_rate, dst_rate, _ATTEN_DB, _DELAY_LIMIT_S)
        if rc == -1:
            raise ValueError(
                f"unsupported rates {src_rate} -> {dst_rate}: both must be 1000..384000 Hz and "
                "within a factor of 48 of each other")
        if rc == -3:
            raise ValueError(f"rates {src_rate} -> {dst_rate} need a filter too large to precompute")
        if rc != 0:
            raise MemoryError()
        self.ready = True

    def __dealloc__(self):
        if self.ready:
            oh_rs_free(&self.rs)

    @property
    def src_rate(self):
        return self.rs.src_rate

    @property
    def dst_rate(self):
        return self.rs.dst_rate

    @property
    def delay_samples(self):
        """Algorithmic (group) delay in samples at dst_rate."""
        return self.rs.delay

    def reset(self):
        oh_rs_reset(&self.rs)

    cdef bytes _process_ptr(self, const int16_t *src, size_t n):
        cdef size_t n_out = oh_rs_output_len(&self.rs, n)
        out = _new_bytes(<Py_ssize_t>(n_out * 2))
        oh_rs_process(&self.rs, src, n, <int16_t *>PyBytes_AS_STRING(out))
        return out

    def process(self, pcm):
        cdef Py_buffer view
        _acquire(pcm, &view, "Resampler input")
        try:
            if view.len & 1:
                raise ValueError(f"PCM16 input must have an even byte length, got {view.len}")
            return self._process_ptr(<const int16_t *>view.buf, <size_t>(view.len // 2))
        finally:
            PyBuffer_Release(&view)

    def flush(self):
        cdef size_t n_out = oh_rs_flush_len(&self.rs)
        out = _new_bytes(<Py_ssize_t>(n_out * 2))
        oh_rs_flush(&self.rs, <int16_t *>PyBytes_AS_STRING(out))
        return out

    def __repr__(self):
        return f"Resampler({self.rs.src_rate}, {self.rs.dst_rate})"


_JB_CODECS = {"ulaw": 1, "pcm16": 0}


cdef class JitterBuffer:
    """Orders frames by sequence number and conceals gaps; see csrc/jitter.h for the policy.

    push(seq, payload) stores a frame (late and duplicate frames are counted and dropped);
    pop() always returns exactly one frame; `ready` says whether pop() would play real audio
    (or conceal a gap that `target_frames` later frames have waited on).
    """
    cdef oh_jitter jb
    cdef bint ok
    cdef readonly str codec

    def __cinit__(self, frame_bytes=160, target_frames=3, max_frames=10, str codec="ulaw"):
        self.ok = False
        frame_bytes = _int_arg(frame_bytes, "frame_bytes")
        target_frames = _int_arg(target_frames, "target_frames")
        max_frames = _int_arg(max_frames, "max_frames")
        if codec not in _JB_CODECS:
            raise ValueError(f"codec must be 'ulaw' or 'pcm16', got {codec!r}")
        if frame_bytes <= 0 or frame_bytes > 65536:
            raise ValueError(f"frame_bytes must be 1..65536, got {frame_bytes}")
        if codec == "pcm16" and frame_bytes % 2:
            raise ValueError("pcm16 frames need an even frame_bytes")
        if max_frames < 1 or max_frames > 4096:
            raise ValueError(f"max_frames must be 1..4096, got {max_frames}")
        if target_frames < 1 or target_frames > max_frames:
            raise ValueError(f"target_frames must be 1..max_frames ({max_frames}), got {target_frames}")
        if oh_jb_init(&self.jb, frame_bytes, target_frames, max_frames, _JB_CODECS[codec]) != 0:
            raise MemoryError()
        self.codec = codec
        self.ok = True

    def __dealloc__(self):
        if self.ok:
            oh_jb_free(&self.jb)

    @property
    def frame_bytes(self):
        return self.jb.frame_bytes

    @property
    def depth(self):
        return self.jb.depth

    @property
    def ready(self):
        return bool(oh_jb_ready(&self.jb))

    def push(self, seq, payload):
        cdef Py_buffer view
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise TypeError(f"seq must be an int, not {type(seq).__name__}")
        if seq < 0 or seq >= (1 << 62):
            raise ValueError(f"seq must be 0..2**62, got {seq}")
        _acquire(payload, &view, "JitterBuffer payload")
        try:
            if <size_t>view.len != self.jb.frame_bytes:
                raise ValueError(f"frame must be {self.jb.frame_bytes} bytes, got {view.len}")
            oh_jb_push(&self.jb, <long long>seq, <const uint8_t *>view.buf)
        finally:
            PyBuffer_Release(&view)

    def pop(self):
        out = _new_bytes(<Py_ssize_t>self.jb.frame_bytes)
        oh_jb_pop(&self.jb, <uint8_t *>PyBytes_AS_STRING(out))
        return out

    @property
    def stats(self):
        s = self.jb.st
        return {
            "received": s.received, "played": s.played, "late": s.late, "duplicate": s.duplicate,
            "reordered": s.reordered, "lost": s.lost, "concealed": s.concealed,
            "overflow": s.overflow, "underrun": s.underrun, "depth": self.jb.depth,
        }


cdef class FrameVad:
    """Energy VAD with an adaptive noise floor (csrc/vad.h), debounced into `speaking`."""
    cdef oh_vad v
    cdef readonly int frame_ms

    def __cinit__(self, sample_rate=8000, frame_ms=20, *, double threshold_db=9.0,
                  double gate_db=-55.0, double start_ms=60.0, double stop_ms=300.0):
        sample_rate = _int_arg(sample_rate, "sample_rate")
        frame_ms = _int_arg(frame_ms, "frame_ms")
        if not (isfinite(gate_db) and isfinite(start_ms) and isfinite(stop_ms)):
            raise ValueError("gate_db, start_ms and stop_ms must be finite numbers")
        if sample_rate < 1000 or sample_rate > 384000:
            raise ValueError(f"sample_rate must be 1000..384000, got {sample_rate}")
        if frame_ms < 1 or frame_ms > 1000:
            raise ValueError(f"frame_ms must be 1..1000, got {frame_ms}")
        if not (0.0 < threshold_db < 60.0):
            raise ValueError(f"threshold_db must be between 0 and 60, got {threshold_db}")
        if start_ms < 0 or stop_ms < 0:
            raise ValueError("start_ms and stop_ms must be >= 0")
        self.frame_ms = frame_ms
        oh_vad_init(&self.v, sample_rate, threshold_db, gate_db, start_ms, stop_ms)

    def process(self, pcm_frame):
        """Classify one frame of PCM16 LE (any length; a trailing odd byte is ignored)."""
        cdef Py_buffer view
        cdef double level = OH_LEVEL_FLOOR_DB
        cdef int speech
        _acquire(pcm_frame, &view, "FrameVad input")
        try:
            speech = oh_vad_process(&self.v, <const int16_t *>view.buf, <size_t>(view.len // 2), &level)
        finally:
            PyBuffer_Release(&view)
        return bool(speech), level

    def reset(self):
        oh_vad_reset(&self.v)

    @property
    def speaking(self):
        return bool(self.v.speaking)

    @property
    def transition(self):
        """+1 when the last frame started speech, -1 when it ended it, else 0."""
        return self.v.transition

    @property
    def speech_ms(self):
        return self.v.speech_ms

    @property
    def silence_ms(self):
        return self.v.silence_ms

    @property
    def noise_floor_db(self):
        return self.v.floor_db

    @property
    def sample_rate(self):
        return self.v.sample_rate

    @property
    def start_ms(self):
        return self.v.start_ms

    @property
    def stop_ms(self):
        return self.v.stop_ms


cdef int16_t *_grow(int16_t **buf, size_t *cap, size_t n) except NULL:
    """A scratch buffer of at least n samples, reused across calls (allocated once per call setup)."""
    if n > cap[0] or buf[0] == NULL:
        free(buf[0])
        n = max(n, <size_t>160)
        buf[0] = <int16_t *>malloc(n * sizeof(int16_t))
        if buf[0] == NULL:
            cap[0] = 0
            raise MemoryError()
        cap[0] = n
    return buf[0]


cdef inline void _put_ulaw(uint8_t *dst, const uint8_t *src, size_t n, int width):
    """n mu-law samples into dst from mu-law (width 1) or PCM16 (width 2)."""
    if width == 2:
        oh_ulaw_encode(<const int16_t *>src, n, dst)
    else:
        memcpy(dst, src, n)


# InboundPath modes
cdef enum:
    _IN_RESAMPLE = 0
    _IN_PCM8 = 1
    _IN_ULAW = 2


cdef class InboundPath:
    """One call's caller audio: mu-law frame -> PCM16 8 kHz -> VAD -> PCM16 at stt_rate.

    With stt_encoding="ulaw" the STT takes the caller's mu-law as is and the frame is returned
    unchanged (Deepgram accepts mu-law 8 kHz): decoding is then only for the VAD.
    """
    cdef readonly FrameVad vad
    cdef readonly Resampler resampler
    cdef readonly int stt_rate
    cdef readonly str stt_encoding
    cdef int mode
    cdef int16_t *scratch
    cdef size_t cap

    def __cinit__(self, *args, **kwargs):
        self.scratch = NULL
        self.cap = 0

    def __init__(self, stt_rate=16000, *, str stt_encoding="pcm16", FrameVad vad=None):
        stt_rate = _int_arg(stt_rate, "stt_rate")
        if stt_encoding not in ("pcm16", "ulaw"):
            raise ValueError(f"stt_encoding must be 'pcm16' or 'ulaw', got {stt_encoding!r}")
        if stt_encoding == "ulaw" and stt_rate != 8000:
            raise ValueError("mu-law STT audio is 8 kHz: use stt_rate=8000")
        self.vad = vad if vad is not None else FrameVad(8000, 20)
        if self.vad.sample_rate != 8000:
            raise ValueError("the VAD of an inbound path runs at 8000 Hz")
        self.resampler = Resampler(8000, stt_rate) if stt_rate != 8000 else None
        self.stt_rate = stt_rate
        self.stt_encoding = stt_encoding
        self.mode = _IN_ULAW if stt_encoding == "ulaw" else _IN_PCM8 if stt_rate == 8000 else _IN_RESAMPLE

    def __dealloc__(self):
        free(self.scratch)

    cdef int16_t *_room(self, size_t n) except NULL:
        return _grow(&self.scratch, &self.cap, n)

    def process(self, ulaw_frame):
        """-> (pcm_for_stt: bytes, is_speech: bool, level_db: float)"""
        cdef Py_buffer view
        cdef size_t n
        cdef int16_t *pcm
        cdef double level
        cdef int speech
        cdef bytes out
        _acquire(ulaw_frame, &view, "InboundPath frame")
        try:
            n = <size_t>view.len
            if self.mode == _IN_PCM8:  # decode straight into the result
                out = _new_bytes(<Py_ssize_t>(n * 2))
                pcm = <int16_t *>PyBytes_AS_STRING(out)
            else:
                pcm = self._room(n)
            level = oh_ulaw_decode_level(<const uint8_t *>view.buf, n, pcm, OH_LEVEL_FLOOR_DB)
            speech = oh_vad_update(&self.vad.v, level, n)
            if self.mode == _IN_RESAMPLE:
                out = self.resampler._process_ptr(pcm, n)
            elif self.mode == _IN_ULAW:
                out = ulaw_frame if type(ulaw_frame) is bytes else PyBytes_FromStringAndSize(<char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        return out, speech != 0, level

    def reset(self):
        self.vad.reset()
        if self.resampler is not None:
            self.resampler.reset()


cdef class OutboundPath:
    """Agent audio of any rate -> exact 160-byte mu-law frames (20 ms at 8 kHz) for Twilio.

    PCM input may be split anywhere, even inside a sample: an odd trailing byte and a partial frame
    are carried to the next call. src_encoding="ulaw" (8 kHz only) skips decode/resample/encode.
    """
    cdef readonly Resampler resampler
    cdef readonly int src_rate
    cdef readonly str src_encoding
    cdef bint ulaw_in
    cdef uint8_t carry[160]
    cdef size_t carry_len
    cdef int has_odd
    cdef uint8_t odd_byte
    cdef int16_t *pcm8  # resampler output, reused across calls
    cdef size_t pcm8_cap
    cdef public long long frames_out

    def __cinit__(self, *args, **kwargs):
        self.pcm8 = NULL
        self.pcm8_cap = 0
        self.carry_len = 0
        self.has_odd = 0

    def __init__(self, src_rate=24000, *, str src_encoding="pcm16"):
        src_rate = _int_arg(src_rate, "src_rate")
        if src_encoding not in ("pcm16", "ulaw"):
            raise ValueError(f"src_encoding must be 'pcm16' or 'ulaw', got {src_encoding!r}")
        if src_encoding == "ulaw" and src_rate != 8000:
            raise ValueError("mu-law input must be 8 kHz: use src_rate=8000")
        self.resampler = Resampler(src_rate, 8000) if src_rate != 8000 else None
        self.src_rate = src_rate
        self.src_encoding = src_encoding
        self.ulaw_in = src_encoding == "ulaw"
        self.frames_out = 0

    def __dealloc__(self):
        free(self.pcm8)

    cdef int16_t *_room(self, size_t n) except NULL:
        return _grow(&self.pcm8, &self.pcm8_cap, n)

    cdef list _frames(self, const uint8_t *src, size_t n, int width):
        """n samples of mu-law (width 1, copied) or 8 kHz PCM16 (width 2, encoded straight into the
        frames) -> whole 160-byte frames; the partial rest is carried to the next call."""
        cdef list frames = []
        cdef size_t take
        cdef bytes f
        if self.carry_len:
            take = min(n, 160 - self.carry_len)
            _put_ulaw(self.carry + self.carry_len, src, take, width)
            self.carry_len += take
            src += take * width
            n -= take
            if self.carry_len == 160:
                frames.append(PyBytes_FromStringAndSize(<char *>self.carry, 160))
                self.carry_len = 0
        while n >= 160:
            f = _new_bytes(160)
            _put_ulaw(<uint8_t *>PyBytes_AS_STRING(f), src, 160, width)
            frames.append(f)
            src += 160 * width
            n -= 160
        if n:  # the carry is empty here
            _put_ulaw(self.carry, src, n, width)
            self.carry_len = n
        self.frames_out += len(frames)
        return frames

    cdef list _pcm(self, const int16_t *pcm, size_t n):
        cdef int16_t *buf
        cdef size_t n8
        if self.resampler is not None:
            n8 = oh_rs_output_len(&self.resampler.rs, n)
            buf = self._room(n8)
            oh_rs_process(&self.resampler.rs, pcm, n, buf)
            return self._frames(<const uint8_t *>buf, n8, 2)
        return self._frames(<const uint8_t *>pcm, n, 2)

    def process(self, pcm):
        """-> list of 160-byte mu-law frames (possibly empty)."""
        cdef Py_buffer view
        cdef const uint8_t *p
        cdef size_t n
        cdef uint8_t pair[2]
        cdef list head
        _acquire(pcm, &view, "OutboundPath input")
        try:
            p = <const uint8_t *>view.buf
            n = <size_t>view.len
            if self.ulaw_in:
                return self._frames(p, n, 1)
            if self.has_odd and n:
                pair[0] = self.odd_byte
                pair[1] = p[0]
                self.has_odd = 0
                head = self._pcm(<const int16_t *>pair, 1)
                p += 1
                n -= 1
            else:
                head = None
            if n & 1:
                self.odd_byte = p[n - 1]
                self.has_odd = 1
                n -= 1
            if head:
                return head + self._pcm(<const int16_t *>p, n // 2)
            return self._pcm(<const int16_t *>p, n // 2)
        finally:
            PyBuffer_Release(&view)

    def flush(self):
        """Drain the resampler tail; pad the last partial frame with mu-law silence; reset."""
        cdef list frames = []
        cdef int16_t *buf
        cdef size_t n
        self.has_odd = 0
        if self.resampler is not None:
            n = oh_rs_flush_len(&self.resampler.rs)
            buf = self._room(n)
            oh_rs_flush(&self.resampler.rs, buf)
            frames = self._frames(<const uint8_t *>buf, n, 2)
        if self.carry_len:
            memset(self.carry + self.carry_len, OH_ULAW_SILENCE, 160 - self.carry_len)
            frames.append(PyBytes_FromStringAndSize(<char *>self.carry, 160))
            self.carry_len = 0
            self.frames_out += 1
        return frames

    def reset(self):
        """Drop everything carried (barge-in): the next process() starts a fresh stream."""
        self.carry_len = 0
        self.has_odd = 0
        if self.resampler is not None:
            self.resampler.reset()

    @property
    def pending_bytes(self):
        """mu-law bytes carried towards the next frame."""
        return self.carry_len
