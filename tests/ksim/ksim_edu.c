/*
 * ksim_edu.c: QEMU's edu device, as the kernel lab drives it through
 * vfio-pci: its regions (VFIO_DEVICE_GET_REGION_INFO, pread and pwrite
 * at the region offsets) and its DMA engine.
 *
 * What is modelled is what QEMU 7.2's hw/misc/edu.c does for the
 * registers the lab uses: BAR0 (1 MiB of MMIO) holds the identification
 * (0x00), the DMA source (0x80), destination (0x88), count (0x90) and
 * command (0x98: bit 0 starts a transfer and reads back 1 until it is
 * done; bit 1 set moves the device's buffer to memory, clear moves memory
 * to the buffer). The device's 4 KiB buffer sits at address 0x40000 of
 * its DMA space; a memory address is an IOVA masked to 28 bits. A
 * transfer that leaves the buffer aborts QEMU; here it is refused and
 * counted as a fault. A transfer only runs while bus mastering is on in
 * the PCI command register (config region, offset 4, bit 2). Transfers
 * finish at once (QEMU's take about 100 ms of guest time: the lab polls
 * the command register in both cases).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/vfio.h>

#include "ksim_internal.h"

#define EDU_BAR_SIZE (1u << 20)
#define EDU_CONFIG_SIZE 256u
#define EDU_ID 0x010000edu
#define EDU_BUF_ADDR 0x40000u
#define EDU_BUF_SIZE 4096u
#define EDU_DMA_MASK ((1ull << 28) - 1)
#define EDU_CMD_START 0x1u
#define EDU_CMD_TO_RAM 0x2u
#define PCI_COMMAND_OFF 4u
#define PCI_COMMAND_MASTER 0x4u

/* vfio-pci's region offsets: the index in the top bits. */
#define REGION_SHIFT 40
#define REGION_OFFSET(i) ((uint64_t)(i) << REGION_SHIFT)

struct ksim_edu {
	uint8_t buf[EDU_BUF_SIZE];
	uint8_t config[EDU_CONFIG_SIZE];
	uint64_t src, dst, cnt;
	uint32_t cmd;
};

int ksim_edu_init(struct ksim_device *d)
{
	struct ksim_edu *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	/* Vendor 0x1234, device 0x11e8, as QEMU's edu. */
	e->config[0] = 0x34;
	e->config[1] = 0x12;
	e->config[2] = 0xe8;
	e->config[3] = 0x11;
	d->edu = e;
	return 0;
}

void ksim_edu_free(struct ksim_device *d)
{
	free(d->edu);
	d->edu = NULL;
}

int ksim_edu_region_info(struct ksim_device *d, void *arg)
{
	struct vfio_region_info info;
	int ret;

	ret = ksim_copy_from_user(&info, arg, sizeof(info));
	if (ret)
		return ret;
	if (info.argsz < sizeof(info) ||
	    info.index >= VFIO_PCI_NUM_REGIONS)
		return -EINVAL;
	info.offset = REGION_OFFSET(info.index);
	info.cap_offset = 0;
	if (info.index == VFIO_PCI_BAR0_REGION_INDEX) {
		info.size = EDU_BAR_SIZE;
		info.flags = VFIO_REGION_INFO_FLAG_READ |
			     VFIO_REGION_INFO_FLAG_WRITE |
			     VFIO_REGION_INFO_FLAG_MMAP;
	} else if (info.index == VFIO_PCI_CONFIG_REGION_INDEX) {
		info.size = EDU_CONFIG_SIZE;
		info.flags = VFIO_REGION_INFO_FLAG_READ |
			     VFIO_REGION_INFO_FLAG_WRITE;
	} else {
		info.size = 0;
		info.flags = 0;
	}
	(void)d;
	return ksim_copy_to_user(arg, &info, sizeof(info));
}

/* Memory at iova into the buffer, through the device's address space. */
static int dma_from_ram(struct ksim *k, struct ksim_device *d, uint8_t *to,
			uint64_t iova, uint64_t len)
{
	uint64_t off, plen;
	void *hva;
	int ret;

	if (!d->as_ops)
		return -ENODEV;
	for (off = 0; off < len; off += plen) {
		ret = d->as_ops->translate(k, d->as, d, iova + off, len - off,
					   &hva, &plen);
		if (ret)
			return ret;
		memcpy(to + off, hva, plen);
	}
	return 0;
}

static void run_dma(struct ksim *k, struct ksim_device *d)
{
	struct ksim_edu *e = d->edu;
	bool to_ram = e->cmd & EDU_CMD_TO_RAM;
	uint64_t buf_addr = to_ram ? e->src : e->dst;
	uint64_t ram = (to_ram ? e->dst : e->src) & EDU_DMA_MASK;
	uint64_t at = buf_addr - EDU_BUF_ADDR;
	int ret;

	e->cmd &= ~EDU_CMD_START;
	if (!(e->config[PCI_COMMAND_OFF] & PCI_COMMAND_MASTER))
		return;
	if (buf_addr < EDU_BUF_ADDR || at >= EDU_BUF_SIZE || !e->cnt ||
	    e->cnt > EDU_BUF_SIZE - at) {
		k->faults++;
		return;
	}
	if (to_ram)
		ret = ksim_dma_write_as(k, d, d->as_ops, d->as, ram,
					e->buf + at, e->cnt);
	else
		ret = dma_from_ram(k, d, e->buf + at, ram, e->cnt);
	if (ret)
		k->faults++;
}

static int bar_access(struct ksim *k, struct ksim_device *d, uint64_t off,
		      void *buf, size_t len, bool write)
{
	struct ksim_edu *e = d->edu;
	uint64_t *reg = NULL;
	uint32_t v = 0;

	if (len != 4 || off % 4)
		return -EINVAL; /* the lab's accesses are 4 bytes, aligned */
	switch (off & ~4ull) {
	case 0x80:
		reg = &e->src;
		break;
	case 0x88:
		reg = &e->dst;
		break;
	case 0x90:
		reg = &e->cnt;
		break;
	default:
		break;
	}
	if (!write) {
		if (off == 0)
			v = EDU_ID;
		else if (off == 0x98)
			v = e->cmd;
		else if (reg)
			v = (uint32_t)(*reg >> (off % 8 ? 32 : 0));
		memcpy(buf, &v, 4);
		return 4;
	}
	memcpy(&v, buf, 4);
	if (reg && off % 8)
		*reg = (*reg & 0xffffffffull) | ((uint64_t)v << 32);
	else if (reg)
		*reg = (*reg & ~0xffffffffull) | v;
	else if (off == 0x98 && !(e->cmd & EDU_CMD_START)) {
		e->cmd = v;
		if (v & EDU_CMD_START)
			run_dma(k, d);
	}
	return 4;
}

int64_t ksim_edu_rw(struct ksim *k, struct ksim_device *d, void *buf,
		    size_t len, uint64_t off, bool write)
{
	uint64_t index = off >> REGION_SHIFT;
	uint64_t at = off & (REGION_OFFSET(1) - 1);
	struct ksim_edu *e = d->edu;

	if (index == VFIO_PCI_BAR0_REGION_INDEX) {
		if (at >= EDU_BAR_SIZE || len > EDU_BAR_SIZE - at)
			return -EINVAL;
		return bar_access(k, d, at, buf, len, write);
	}
	if (index != VFIO_PCI_CONFIG_REGION_INDEX || at >= EDU_CONFIG_SIZE ||
	    len > EDU_CONFIG_SIZE - at)
		return -EINVAL;
	if (write)
		memcpy(e->config + at, buf, len);
	else
		memcpy(buf, e->config + at, len);
	return (int64_t)len;
}
