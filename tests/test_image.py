"""exec with a program image: the ELF loader's layout from a ProgramImage (sizes or a real
ELF file's program headers), and what fork and the first writes cost on it."""
import shutil
import struct

import pytest

import cowsim
from cowsim import InvalidArgument, Outcome, ProgramImage, Segment

PS = 4096


def test_simple_image_layout_and_the_padzero_copy():
    with cowsim.Machine(memory="16MiB") as m:
        img = ProgramImage.simple("prog", text=3 * PS, data=PS + 100, bss=2 * PS, heap=4 * PS, stack=8 * PS)
        assert img.segments == (Segment(0, 3 * PS, 3 * PS, 0, "r"), Segment(3 * PS, 3 * PS + 100, PS + 100, 3 * PS, "rw"))
        p = m.spawn()
        lay = p.exec(img)
        base = 0x555555554000  # ELF_ET_DYN_BASE, no randomisation
        assert lay == {"stack": (m.user_end - 8 * PS, m.user_end), "text": (base, base + 3 * PS),
                       "data": (base + 3 * PS, base + 5 * PS), "bss": (base + 5 * PS, base + 7 * PS),
                       "heap": (base + 7 * PS, base + 11 * PS)}
        # the stack's top page (argv) and padzero's write into the data's last file page
        s = p.stats
        assert (s.faults_zero_fill, s.faults_cow_copy, s.pages_copied) == (1, 1, 1)
        f = m.files[0]
        assert (f.name, f.size, f.stats().cached) == ("prog", 4 * PS + 100, 5)
        regs = {r.start: r for r in p.regions}
        assert regs[base].file_id == f.id and regs[base].prot == "r" and not regs[base].written
        assert regs[base + 3 * PS].written and regs[base + 3 * PS].offset == 3 * PS
        m.check()


def test_fork_shares_text_and_the_first_data_write_copies_one_page():
    with cowsim.Machine(memory="64MiB") as m:
        libc = ProgramImage.simple("libc", text="1MiB", data=8 * PS, bss=4 * PS)
        img = ProgramImage.simple("server", text=16 * PS, data=4 * PS, libraries=(libc,))
        p = m.spawn()
        lay = p.exec(img)
        t0, t1 = lay["libc:text"]
        for a in range(t0, t1, PS):
            p.touch(a)  # the library's text is read: fault-around, 16 pages a fault
        assert p.smaps(t0)["Rss"] == 1024
        q = m.spawn()
        q.exec(img)
        q.touch(t0)
        assert q.smaps(t0)["Rss"] == 64 and q.smaps(t0)["Shared_Clean"] == 64  # one page cache
        c = p.fork()
        assert c.smaps(t0)["Rss"] == 0  # text (no anon_vma) is not copied by fork
        d0 = lay["libc:data"][0]
        used = m.stats.frames_used
        assert c.touch(d0 + 2 * PS, write=True) is Outcome.COW_COPY  # from the page cache
        assert (m.stats.frames_used - used, c.stats.minflt, c.stats.pages_copied) == (1, 1, 1)
        m.check()


def test_from_elf_reads_the_program_headers(tmp_path):
    ls = shutil.which("ls")
    img = ProgramImage.from_elf(ls)
    assert img.segments and img.segments[0].offset == 0 and any(s.prot == "rw" for s in img.segments)
    # a minimal ELF: one PT_LOAD of 2 pages (ET_EXEC at 0x400000)
    hdr = bytearray(64 + 56)
    hdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<HH", hdr, 16, 2, 62)
    struct.pack_into("<Q", hdr, 32, 64)
    struct.pack_into("<HH", hdr, 54, 56, 1)
    struct.pack_into("<IIQQQQQQ", hdr, 64, 1, 5, 0, 0x400000, 0x400000, 2 * PS, 2 * PS, PS)
    elf = tmp_path / "tiny"
    elf.write_bytes(bytes(hdr) + bytes(2 * PS - len(hdr)))
    tiny = ProgramImage.from_elf(elf)
    assert (tiny.base, tiny.segments) == (0, (Segment(0x400000, 2 * PS, 2 * PS, 0, "r"),))
    with cowsim.Machine(memory="4MiB") as m:
        p = m.spawn()
        assert p.exec(tiny)["text"] == (0x400000, 0x402000)
        m.check()
    (tmp_path / "bad").write_bytes(b"not an elf")
    with pytest.raises(InvalidArgument, match="not a 64-bit"):
        ProgramImage.from_elf(tmp_path / "bad")
    with cowsim.Machine(memory="4MiB") as m:
        with pytest.raises(TypeError):
            m.spawn().exec("ls")
