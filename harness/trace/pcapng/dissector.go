package pcapng

import (
	"fmt"
	"strings"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/trace"
)

// Dissector returns a Wireshark Lua post-dissector that names CTAPHID and CTAP in the HID
// payloads of a capture (Wireshark 4.0 has no CTAP dissector): channel, CTAPHID command, length
// or sequence, and for CBOR initialization packets the CTAP2 command (host→key) or status
// (key→host) in the packet list. Its name tables come from the ctap package, so they match
// `fidolab trace show`. Load it with `wireshark -X lua_script:FILE` or copy it into
// ~/.local/lib/wireshark/plugins/.
func Dissector() []byte {
	var b strings.Builder
	b.WriteString(`-- CTAPHID and CTAP names in USB HID captures, written by fidolab (fidolab trace pcap --lua).
-- Fields: fidolab.ctaphid.cid, .cmd, .bcnt, .seq, fidolab.ctap.command, fidolab.ctap.status
local proto = Proto("fidolab_ctaphid", "FIDO CTAPHID (fidolab)")
`)
	b.WriteString("local hid_cmds = {")
	for c := 0x80; c <= 0xFF; c++ {
		if n := trace.HIDName(byte(c)); !strings.HasPrefix(n, "0x") {
			fmt.Fprintf(&b, "[0x%02X]=%q, ", c, n)
		}
	}
	b.WriteString("}\nlocal ctap_cmds = {")
	for c := 0; c < 0x80; c++ {
		if n := ctap.Command(c).String(); !strings.HasPrefix(n, "command_0x") {
			fmt.Fprintf(&b, "[0x%02X]=%q, ", c, n)
		}
	}
	b.WriteString("}\nlocal statuses = {")
	for s := 0; s < 0x100; s++ {
		if n := ctap.Status(s).String(); !strings.HasPrefix(n, "CTAP_STATUS_0x") {
			fmt.Fprintf(&b, "[0x%02X]=%q, ", s, n)
		}
	}
	fmt.Fprintf(&b, "}\nlocal CBOR, INIT_HEADER = 0x%02X, %d\n", ctaphid.CmdCBOR, ctaphid.ReportSize-ctaphid.InitPayloadSize)
	b.WriteString(`
local f_cid = ProtoField.uint32("fidolab.ctaphid.cid", "Channel", base.HEX)
local f_cmd = ProtoField.uint8("fidolab.ctaphid.cmd", "CTAPHID command", base.HEX, hid_cmds)
local f_bcnt = ProtoField.uint16("fidolab.ctaphid.bcnt", "Payload length", base.DEC)
local f_seq = ProtoField.uint8("fidolab.ctaphid.seq", "Continuation sequence", base.DEC)
local f_command = ProtoField.string("fidolab.ctap.command", "CTAP command")
local f_status = ProtoField.string("fidolab.ctap.status", "CTAP status")
proto.fields = {f_cid, f_cmd, f_bcnt, f_seq, f_command, f_status}

local hid_data = Field.new("usbhid.data")
local direction = Field.new("usb.endpoint_address.direction")

function proto.dissector(tvb, pinfo, tree)
	local data = hid_data()
	if data == nil then return end
	local r = data.range
	if r:len() < 5 then return end
	local t = tree:add(proto, r)
	t:add(f_cid, r(0, 4))
	local first = r(4, 1):uint()
	local dir = direction()
	local from_key = dir ~= nil and dir.value == 1
	if first < 0x80 then
		t:add(f_seq, r(4, 1))
		pinfo.cols.info:append(string.format(" [CTAPHID cont %d]", first))
		return
	end
	t:add(f_cmd, r(4, 1))
	if r:len() < INIT_HEADER then return end
	t:add(f_bcnt, r(5, 2))
	local name = hid_cmds[first] or string.format("0x%02X", first)
	local text = "CTAPHID " .. name
	if first == CBOR and r(5, 2):uint() > 0 and r:len() > INIT_HEADER then
		local b = r(INIT_HEADER, 1):uint()
		if from_key then
			local s = statuses[b] or string.format("CTAP_STATUS_0x%02X", b)
			t:add(f_status, r(INIT_HEADER, 1), s)
			text = text .. " " .. s
		else
			local c = ctap_cmds[b] or string.format("command_0x%02X", b)
			t:add(f_command, r(INIT_HEADER, 1), c)
			text = text .. " " .. c
		end
	end
	pinfo.cols.protocol = "CTAPHID"
	pinfo.cols.info = text
end

register_postdissector(proto)
`)
	return []byte(b.String())
}
