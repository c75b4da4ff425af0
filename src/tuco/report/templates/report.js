(function(){
  document.querySelectorAll('table.sortable').forEach(function(table){
    var tbody=table.tBodies[0], box=table.closest('.rowsbox');
    var input=box.querySelector('.filter'), count=box.querySelector('.count'), more=box.querySelector('.more');
    var visible=+table.dataset.visible, expanded=false;
    function update(){
      var q=(input.value||'').toLowerCase(), shown=0, matched=0;
      Array.prototype.forEach.call(tbody.rows,function(r){
        var ok=!q||r.textContent.toLowerCase().indexOf(q)>=0;
        if(ok)matched++;
        var show=ok&&(expanded||q||matched<=visible); r.hidden=!show; if(show)shown++;
      });
      count.textContent='showing '+shown+' of '+matched+(q?' matching':'')+' rows';
      more.hidden=expanded||q||matched<=visible;
    }
    table.querySelectorAll('th').forEach(function(th){
      th.addEventListener('click',function(){
        var col=+th.dataset.col, asc=!th.classList.contains('asc');
        table.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
        th.classList.add(asc?'asc':'desc');
        var rows=Array.prototype.slice.call(tbody.rows);
        rows.sort(function(a,b){
          var x=a.cells[col], y=b.cells[col];
          var vx=x.dataset.v, vy=y.dataset.v, r;
          if(vx!==undefined&&vy!==undefined){r=parseFloat(vx)-parseFloat(vy);}
          else{r=x.textContent.localeCompare(y.textContent,undefined,{numeric:true});}
          return asc?r:-r;
        });
        rows.forEach(function(r){tbody.appendChild(r);});
        update();
      });
    });
    more.addEventListener('click',function(){expanded=true;update();});
    input.addEventListener('input',update); update();
  });
  document.body.setAttribute('data-ready','1');
})();
