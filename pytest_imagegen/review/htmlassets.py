"""The review page's inline style and script (no external asset: the page works as a file
from a CI artifact). The script only reads the page's own attributes: checkboxes become an
``approvals.json`` download; on the review server, Approve/Reject POST with the token."""

from __future__ import annotations

import base64
import hashlib

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d232a;background:#f6f7f9}
h1{font-size:20px;margin:0 0 6px}
.top{background:#fff;border:1px solid #d8dee6;border-radius:8px;padding:10px 16px;margin:0 0 14px}
.top p{margin:4px 0}
.counts span{display:inline-block;margin:0 6px 4px 0;padding:1px 8px;border-radius:10px;background:#eef1f4}
.counts .bad{background:#fbe3e3;color:#9b1f1f}
.gate-exceeded{color:#9b1f1f;font-weight:700}
.toolbar{position:sticky;top:0;z-index:2;background:#f6f7f9;padding:6px 0 10px;display:flex;gap:12px;align-items:center;flex-wrap:wrap}
.toggle{display:inline-block;padding:6px 10px;background:#fff;border:1px solid #ccd3db;border-radius:6px}
#only-failures:checked ~ #cases .case:not(.failed){display:none}
#only-failures:checked ~ #right-size .variant:not(.failed){display:none}
#only-failures:checked ~ #right-size .group:not(.has-failed){display:none}
#only-failures:checked ~ #right-size:not(.has-failed){display:none}
button{font:inherit;padding:5px 12px;border-radius:6px;border:1px solid #8895a3;background:#fff;cursor:pointer}
button:disabled{opacity:.5;cursor:default}
.case{background:#fff;border:1px solid #d8dee6;border-left:6px solid #3c9d5d;border-radius:8px;padding:12px 16px;margin:0 0 16px}
.case.failed{border-left-color:#d23c3c}
.case.warned{border-left-color:#d9a21b}
.case.decided{outline:3px solid #3c7bd2}
.case header{display:flex;gap:8px;align-items:center;flex-wrap:wrap}
.case h2{font-size:15px;margin:0;font-family:ui-monospace,monospace;word-break:break-all}
.status{display:inline-block;font-weight:600;padding:1px 8px;border-radius:10px;background:#fbe3e3;color:#9b1f1f}
.status.s-passed{background:#e3f4e8;color:#1f6b3a}
.status.s-warn,.status.s-skipped{background:#fbf0d5;color:#7a5a06}
.failure{white-space:pre-wrap;background:#fff4f4;border:1px solid #f1c8c8;padding:8px;border-radius:6px;font-size:12px;max-height:16em;overflow:auto}
.prompt{white-space:pre-wrap;background:#f3f5f8;padding:8px;border-radius:6px;margin:8px 0}
.prompt.old{background:#fdf6e3}
.changes h3{font-size:13px;margin:6px 0 2px}
.changes ul{margin:0;padding-left:20px}
.command code{background:#eef1f4;padding:1px 4px;border-radius:4px;word-break:break-all}
table.params{border-collapse:collapse;margin:6px 0}
table.params td{padding:2px 10px 2px 0;vertical-align:top}
table.params td:first-child{color:#4a5562}
.images{margin-top:8px}
.pair{display:flex;gap:16px;flex-wrap:wrap;margin:0 0 10px}
figure{margin:0;max-width:320px}
figure img{max-width:320px;max-height:320px;border:1px solid #ccd3db;display:block;background:#eee}
figcaption{font-size:12px;color:#4a5562;max-width:320px}
.compare{position:relative;display:inline-block;max-width:320px}
.compare img{max-width:320px;max-height:320px}
.compare img.top{position:absolute;left:0;top:0;clip-path:inset(0 0 0 50%)}
.compare input{display:block;width:100%;margin:4px 0}
img.diff{margin-top:4px}
.over{color:#b01e1e;font-weight:600}
.none{color:#7b8794;font-style:italic}
.note{color:#4a5562;font-size:12px}
.pick{font-size:12px;color:#1d232a}
.decide-buttons{margin-top:8px;display:flex;gap:8px}
.decision.done{color:#1f4f9b;font-weight:600}
.decision.refused{color:#9b1f1f;font-weight:600}
.variants{display:flex;gap:16px;flex-wrap:wrap}
.variant{background:#fff;border:1px solid #d8dee6;border-radius:8px;padding:8px;max-width:340px}
.variant.recommended{border:3px solid #3c9d5d}
.variant.failed{border:2px solid #d23c3c}
.verdict{font-weight:600}
"""

SCRIPT = """(function(){
var body=document.body,token=body.getAttribute('data-token')||'';
var button=document.getElementById('download-approvals');
function picked(){return document.querySelectorAll('input.approve-image:checked');}
function update(){var n=picked().length;if(!button)return;button.disabled=!n;
button.textContent='Download approvals.json'+(n?' ('+n+' image'+(n>1?'s':'')+')':'');}
document.querySelectorAll('input.approve-case').forEach(function(c){
c.addEventListener('change',function(){c.closest('section').querySelectorAll('input.approve-image')
.forEach(function(i){i.checked=c.checked;});update();});});
document.querySelectorAll('input.approve-image').forEach(function(i){i.addEventListener('change',update);});
function chosen(){var out=[];document.querySelectorAll('section.case').forEach(function(s){
var imgs=[];s.querySelectorAll('input.approve-image:checked').forEach(function(i){
imgs.push({sha256:i.getAttribute('data-sha256')});});if(!imgs.length)return;
var per=s.getAttribute('data-cost-per-accepted');
out.push({nodeid:s.getAttribute('data-nodeid'),images:imgs,cost_per_accepted:per===''?null:Number(per)});});
return out;}
if(button)button.addEventListener('click',function(){
var data={format:1,kind:'pytest-imagegen approvals',created:new Date().toISOString(),approvals:chosen()};
var blob=new Blob([JSON.stringify(data,null,2)+'\\n'],{type:'application/json'});
var a=document.createElement('a');a.href=URL.createObjectURL(blob);a.download='approvals.json';
body.appendChild(a);a.click();a.remove();});
document.querySelectorAll('.compare input').forEach(function(r){r.addEventListener('input',function(){
r.parentNode.querySelector('img.top').style.clipPath='inset(0 0 0 '+r.value+'%)';});});
if(token)document.querySelectorAll('button.decide').forEach(function(b){b.addEventListener('click',function(){
var s=b.closest('section.case'),all=s.querySelectorAll('input.approve-image'),imgs=[];
var some=s.querySelector('input.approve-image:checked');
all.forEach(function(i){if(i.checked||!some)imgs.push(i.getAttribute('data-sha256'));});
var shown=s.querySelector('.decision');shown.textContent='saving…';shown.className='decision';
fetch('/decide?token='+encodeURIComponent(token),{method:'POST',headers:{'Content-Type':'application/json',
'X-Imagegen-Token':token},body:JSON.stringify({nodeid:s.getAttribute('data-nodeid'),
action:b.getAttribute('data-action'),images:imgs})}).then(function(r){return r.json().then(function(j){
shown.textContent=j.message||r.statusText;shown.className='decision '+(r.ok?'done':'refused');
if(r.ok)s.classList.add('decided');});}).catch(function(e){shown.textContent='not saved: '+e;
shown.className='decision refused';});});});
update();})();
"""


def script_hash() -> str:
    """The script's CSP hash: the page runs this script and nothing else."""
    digest = hashlib.sha256(SCRIPT.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def csp() -> str:
    return (
        "default-src 'none'; img-src 'self' file: data: blob:; style-src 'unsafe-inline'; "
        f"script-src '{script_hash()}'; connect-src 'self'; base-uri 'none'; form-action 'none'"
    )
