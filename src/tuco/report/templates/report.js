(function(){
  // The rows tables and token views live in one gzip+base64 JSON block (tuco.report.pack); every text from
  // it is inserted with textContent, never as markup.
  function el(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;if(text!==undefined)e.textContent=text;return e;}
  function unpack(){
    var block=document.getElementById('tuco-data'), bin=atob(block.textContent.trim()), bytes=new Uint8Array(bin.length);
    for(var i=0;i<bin.length;i++)bytes[i]=bin.charCodeAt(i);
    var stream=new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Response(stream).text().then(JSON.parse);
  }
  function num(t){return t==='inf'?Infinity:t==='-inf'?-Infinity:parseFloat(t);}
  function table(box,tb){
    var tbody=box.querySelector('tbody'), input=box.querySelector('.filter'), count=box.querySelector('.count');
    var more=box.querySelector('.more'), head=box.querySelectorAll('th'), long={}, expanded=false;
    tb.long.forEach(function(k){long[k]=true;});
    var rows=tb.rows.map(function(r){
      return {cells:r,text:r.map(function(x){return typeof x==='string'?x:x[0];}).join('\u0001').toLowerCase()};
    });
    function draw(){
      var q=(input.value||'').toLowerCase(), matched=rows.filter(function(r){return !q||r.text.indexOf(q)>=0;});
      var shown=(expanded||q)?matched:matched.slice(0,tb.visible), frag=document.createDocumentFragment();
      shown.forEach(function(r){
        var tr=el('tr');
        r.cells.forEach(function(x,k){
          var td=typeof x==='string'?el('td',long[k]?'text':'',x):el('td','num',x[0]);
          tr.appendChild(td);
        });
        frag.appendChild(tr);
      });
      tbody.textContent='';tbody.appendChild(frag);
      count.textContent='showing '+shown.length+' of '+matched.length+(q?' matching':'')+' rows';
      more.hidden=expanded||!!q||matched.length<=tb.visible;
    }
    head.forEach(function(th){
      th.addEventListener('click',function(){
        var col=+th.dataset.col, asc=!th.classList.contains('asc');
        head.forEach(function(h){h.classList.remove('asc','desc');});
        th.classList.add(asc?'asc':'desc');
        rows.sort(function(a,b){
          var x=a.cells[col], y=b.cells[col], r;
          if(typeof x!=='string'&&typeof y!=='string'){r=num(x[0])-num(y[0]);}
          else{r=(typeof x==='string'?x:x[0]).localeCompare(typeof y==='string'?y:y[0],undefined,{numeric:true});}
          return asc?r:-r;
        });
        draw();
      });
    });
    more.addEventListener('click',function(){expanded=true;draw();});
    input.addEventListener('input',draw);draw();
  }
  function view(box,v,colours){
    var segs=box.querySelector('.segs');
    if(segs.childNodes.length)return;
    v.segments.forEach(function(s){
      var seg=el('div','seg'), toks=el('div','toks');
      seg.appendChild(el('span','seg-label',s[0]));
      if(typeof s[1]==='string'){toks.appendChild(el('span','plain',s[1]));}
      else{
        s[1].forEach(function(t){
          var span=el('span','tok',t[0]), c=colours[t[2]];
          span.style.background=c[0];span.style.color=c[1];
          span.title=t[1]===null?'no value':'TuCo '+t[1];
          toks.appendChild(span);
        });
      }
      seg.appendChild(toks);segs.appendChild(seg);
    });
  }
  function ready(){document.body.setAttribute('data-ready','1');}
  if(!document.getElementById('tuco-data')){ready();return;}
  unpack().then(function(data){
    document.querySelectorAll('.rowsbox[data-table]').forEach(function(box){table(box,data.tables[+box.dataset.table]);});
    document.querySelectorAll('details.tokview[data-view]').forEach(function(box){
      var v=data.views[+box.dataset.view];
      if(box.open)view(box,v,data.colours);
      box.addEventListener('toggle',function(){if(box.open)view(box,v,data.colours);});
    });
    ready();
  },function(err){
    document.querySelectorAll('.rowsbox .count').forEach(function(c){c.textContent='this browser could not unpack the rows ('+err+'); they are in the run file';});
    ready();
  });
})();
